"""Pure-PyTorch Mamba-2 block (state-space duality, chunked matmul form) for CPU and kernel-less GPUs.

Parameter names, shapes and initialisation follow `mamba_ssm.Mamba2` (ngroups=1, no biases on the
projections, gated RMSNorm with norm_before_gate=False, D per head), so a state_dict saved from
either implementation loads into the other.

The SSM per head h (head dim P, state dim N), with scalar decay a_t = exp(dt_t * A_h) < 1:

    S_t = a_t * S_{t-1} + dt_t * x_t B_t^T        (S_t: P x N, S_0 = 0)
    y_t = S_t C_t + D_h * x_t

`ssd_scan` evaluates it without a loop over time: the sequence is cut into chunks of Q steps;
inside a chunk the output is a masked (Q x Q) matmul with the decay matrix
L[i, j] = exp(sum_{j<k<=i} log a_k) (the "quadratic" SSD form); the state carried across chunks
is a second, tiny matmul over chunk indices. Everything is batched matmuls, which is what a CPU
(and autograd) does fastest.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Mamba2's defaults (mamba_ssm/modules/mamba2.py constructor); kept identical so both
# implementations initialise the same way.
DT_MIN = 0.001
DT_MAX = 0.1
DT_INIT_FLOOR = 1e-4
A_INIT_RANGE = (1.0, 16.0)
NORM_EPS = 1e-5
DEFAULT_HEADDIM = 64


def default_headdim(d_inner: int) -> int:
    """Mamba2's headdim is 64; tiny test models whose d_inner is not a multiple of 64 use a divisor."""
    return math.gcd(d_inner, DEFAULT_HEADDIM)


def _segment_decay(log_a_cum: Tensor) -> Tensor:
    """exp(cum[i] - cum[j]) for i >= j, 0 above the diagonal. log_a_cum: (..., Q) -> (..., Q, Q).

    The masked entries are replaced by -inf *before* exp: their differences are positive and
    could overflow, and exp(-inf) = 0 gives a zero (not NaN) gradient.
    """
    q = log_a_cum.shape[-1]
    diff = log_a_cum[..., :, None] - log_a_cum[..., None, :]
    causal = torch.ones(q, q, dtype=torch.bool, device=log_a_cum.device).tril()
    return torch.exp(diff.masked_fill(~causal, float("-inf")))


def ssd_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int) -> Tensor:
    """Selective SSM (scalar decay per head) in chunked SSD form, zero initial state.

    x: (b, l, h, p); dt: (b, l, h) (already softplus'ed, >= 0); A: (h,) (negative);
    B, C: (b, l, g, n) with h divisible by g. Returns y: (b, l, h, p) without the D skip term.
    """
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    q = max(1, min(chunk_size, length))  # short sequences use one chunk of their own length
    nchunks = -(-length // q)
    pad = nchunks * q - length
    if pad:
        # dt = 0 on padding: decay exp(0) = 1 and input dt*x*B = 0, so padding changes no state;
        # its outputs are sliced off below.
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))

    # Chunked layouts with heads before time, so every product below is a batched matmul.
    # x*dt: (b, c, h, q, p); log decay cumsum: (b, c, h, q)
    xdt = (x * dt.unsqueeze(-1)).reshape(b, nchunks, q, h, p).transpose(2, 3)
    log_a = (dt * A).reshape(b, nchunks, q, h).transpose(2, 3)
    log_a_cum = torch.cumsum(log_a, dim=-1)
    Bc = B.reshape(b, nchunks, q, g, n).transpose(2, 3)  # (b, c, g, q, n)
    Cc = C.reshape(b, nchunks, q, g, n).transpose(2, 3)
    rep = h // g

    def per_head(t: Tensor) -> Tensor:
        # (b, c, g, ...) -> (b, c, h, ...): heads of one group share B/C (a view, no copy when g == 1)
        if g == 1:
            return t
        return t.repeat_interleave(rep, dim=2)

    # 1) within-chunk outputs: (C_i . B_j) * L[i, j] applied to dt_j x_j
    cb = per_head(Cc @ Bc.transpose(-1, -2))  # (b, c, h|1, q, q)
    y = (cb * _segment_decay(log_a_cum)) @ xdt  # (b, c, h, q, p)

    if nchunks > 1:
        # 2) state each chunk adds at its end: sum_j exp(cum[last] - cum[j]) dt_j x_j B_j^T -> (p, n)
        decay_to_end = torch.exp(log_a_cum[..., -1:] - log_a_cum)  # (b, c, h, q)
        states = (xdt * decay_to_end.unsqueeze(-1)).transpose(-1, -2) @ per_head(Bc)  # (b,c,h,p,n)
        # 3) state entering chunk c: sum_{j<c} exp(total_{j+1} + ... + total_{c-1}) states_j,
        #    a (c x c) strictly-lower decay matrix over chunk totals (no loop over chunks).
        totals = log_a_cum[..., -1].transpose(1, 2)  # (b, h, c)
        cum_totals = torch.cumsum(totals, dim=-1)
        # exp(cum[c-1] - cum[j]) for j <= c-1  ==  segment decay shifted by one chunk
        chunk_decay = _segment_decay(cum_totals)  # (b, h, c, c): [i, j] = exp(cum[i] - cum[j]), i >= j
        chunk_decay = F.pad(chunk_decay, (0, 0, 1, 0))[..., :-1, :]  # row c <- row c-1, row 0 = 0
        flat = states.transpose(1, 2).reshape(b, h, nchunks, p * n)
        entering = (chunk_decay @ flat).view(b, h, nchunks, p, n).transpose(1, 2)  # (b, c, h, p, n)
        # 4) contribution of the entering state: exp(cum[i]) * C_i . S
        y = y + (per_head(Cc) @ entering.transpose(-1, -2)) * torch.exp(log_a_cum).unsqueeze(-1)

    y = y.transpose(2, 3).reshape(b, nchunks * q, h, p)
    return y[:, :length] if pad else y


class RMSNormGated(nn.Module):
    """RMSNorm(y * silu(z)) * weight over groups of `group_size` channels (Mamba2's norm_before_gate=False)."""

    def __init__(self, dim: int, eps: float = NORM_EPS, group_size: int | None = None):
        super().__init__()
        self.eps = eps
        self.group_size = group_size or dim
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        y = y * F.silu(z)
        shape = y.shape
        grouped = y.view(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        normed = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.view(shape) * self.weight


class Mamba2Torch(nn.Module):
    """Mamba-2 mixer: (batch, length, d_model) -> (batch, length, d_model), causal in length."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int | None = None,
        chunk_size: int = 256,
        ngroups: int = 1,
    ):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = expand * d_model
        self.headdim = headdim or default_headdim(self.d_inner)
        if self.d_inner % self.headdim:
            raise ValueError(f"d_inner={self.d_inner} must be divisible by headdim={self.headdim}")
        self.nheads = self.d_inner // self.headdim
        if self.nheads % ngroups:
            raise ValueError(f"nheads={self.nheads} must be divisible by ngroups={ngroups}")
        self.ngroups = ngroups
        self.chunk_size = chunk_size

        # Layout of in_proj's output, as in Mamba2: [z | x | B | C | dt]
        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=False)
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, kernel_size=d_conv, groups=self.conv_dim,
            padding=d_conv - 1, bias=True,
        )
        # dt initialised log-uniform in [DT_MIN, DT_MAX]; dt_bias = softplus^-1(dt)
        dt = torch.exp(
            torch.rand(self.nheads) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)
        ).clamp(min=DT_INIT_FLOOR)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        A = torch.empty(self.nheads).uniform_(*A_INIT_RANGE)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        # Same marker mamba_ssm sets; the optimiser excludes these from weight decay.
        for param in (self.dt_bias, self.A_log, self.D):
            param._no_weight_decay = True
        self.norm = RMSNormGated(self.d_inner, group_size=self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u: Tensor) -> Tensor:
        b, length, _ = u.shape
        z, xbc, dt = torch.split(
            self.in_proj(u), [self.d_inner, self.conv_dim, self.nheads], dim=-1
        )
        # Depthwise causal conv: pad d_conv-1 both sides (nn.Conv1d) and keep the first `length`.
        xbc = F.silu(self.conv1d(xbc.transpose(1, 2))[..., :length].transpose(1, 2))
        gn = self.ngroups * self.d_state
        x, B, C = torch.split(xbc, [self.d_inner, gn, gn], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        x = x.reshape(b, length, self.nheads, self.headdim)
        y = ssd_scan(
            x, dt, A,
            B.reshape(b, length, self.ngroups, self.d_state),
            C.reshape(b, length, self.ngroups, self.d_state),
            self.chunk_size,
        )
        y = y + x * self.D[:, None]
        y = self.norm(y.reshape(b, length, self.d_inner), z)
        return self.out_proj(y)
