"""The seizure detector: per-electrode conv encoder (samples -> frames), bidirectional Mamba-2 stack, per-frame head.

Shapes: x (B, in_channels, T) at 256 Hz -> encoder -> (B, F, d_model) with F = ceil(T / spf),
spf = 256 / frame_rate_hz samples per frame (64 at 4 Hz) -> n_layers bidirectional layers -> logits (B, F).

Masking: `frame_mask` (B, F) is True on valid frames and must be a prefix (valid frames first, then
padding), which is what windowing the tail of a recording produces. Padded frames never influence
valid frames: every stage zeroes padded positions; the encoder uses per-position LayerNorm (no
statistics across time); the forward scan is causal, so trailing padding is only ever in its future;
the backward scan reverses each sequence *within its valid length* (padding stays at the end), so
it too sees padding only in its future. This works unchanged with mamba_ssm's kernels, which take
no mask. Padded frames' logits are set to PAD_LOGIT.

Missing electrodes: `present` (B, C) is True for the electrodes a window has. The encoder ignores
the others (see `PerElectrodeEncoder`): an absent electrode's values cannot change any logit.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from szflow.config import ModelConfig
from szflow.errors import ConfigError
from szflow.model.blocks import make_mamba_block, resolve_mamba_impl

log = logging.getLogger("szflow.model")

SAMPLE_RATE_HZ = 256  # the preprocessing stage resamples every recording to this rate (DESIGN.md §4)
# Finite (not -inf) so that BCE-with-logits on a padded frame stays finite; sigmoid(-1e4) == 0.
PAD_LOGIT = -1.0e4


def samples_per_frame(cfg: ModelConfig) -> int:
    spf = SAMPLE_RATE_HZ / cfg.frame_rate_hz
    if spf != int(spf) or spf < 1:
        raise ConfigError(
            f"model.frame_rate_hz={cfg.frame_rate_hz}: {SAMPLE_RATE_HZ} Hz / frame rate must be a whole "
            f"number of samples per frame (e.g. 4.0 -> 64)"
        )
    return int(spf)


def frames_for(cfg: ModelConfig, n_samples: int) -> int:
    """Frames the detector produces for `n_samples` samples (a partial last frame counts, zero-padded)."""
    return -(-int(n_samples) // samples_per_frame(cfg))


def encoder_strides(total: int, n_stages: int) -> list[int]:
    """Split the downsampling factor over the encoder stages as evenly as integers allow (64, 3 -> 4,4,4)."""
    strides = []
    remaining = total
    for left in range(n_stages, 0, -1):
        target = remaining ** (1.0 / left)
        divisors = [d for d in range(1, remaining + 1) if remaining % d == 0]
        stride = min(divisors, key=lambda d: (abs(math.log(d) - math.log(target)), -d))
        strides.append(stride)
        remaining //= stride
    return strides


def _stage_geometry(stride: int) -> tuple[int, int]:
    """(kernel, padding) with output length exactly T / stride and a kernel spanning two strides."""
    pad = -(-stride // 2)
    return stride + 2 * pad, pad


def prefix_lengths(frame_mask: Tensor) -> Tensor:
    """Valid length per row of a prefix mask; raises if a row has a valid frame after a padded one."""
    if frame_mask.dtype != torch.bool:
        frame_mask = frame_mask.bool()
    if frame_mask.shape[1] > 1 and bool((frame_mask[:, 1:] & ~frame_mask[:, :-1]).any()):
        raise ValueError("frame_mask must be a prefix mask (valid frames first, then padding)")
    return frame_mask.sum(dim=1)


def reverse_valid(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse (B, L, D) along L within each row's valid length; padding stays in place (at the end)."""
    if lengths is None:
        return x.flip(1)
    length = x.shape[1]
    t = torch.arange(length, device=x.device)
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, L); an involution
    return torch.gather(x, 1, idx[:, :, None].expand_as(x))


class BiMambaLayer(nn.Module):
    """Pre-norm residual layer: x + dropout(fwd(n) + rev(bwd(rev(n)))), n = LayerNorm(x)."""

    def __init__(self, cfg: ModelConfig, impl: str):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        block_args = (cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, cfg.chunk_size)
        self.fwd = make_mamba_block(*block_args, impl=impl)
        self.bwd = make_mamba_block(*block_args, impl=impl)
        self.dropout = nn.Dropout(cfg.dropout)

    def mix(self, h: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The bidirectional mixing (no residual): fwd(h) + rev(bwd(rev(h)))."""
        return self.fwd(h) + reverse_valid(self.bwd(reverse_valid(h, lengths)), lengths)

    def forward(self, x: Tensor, lengths: Tensor | None = None, keep: Tensor | None = None) -> Tensor:
        h = self.norm(x)
        if keep is not None:
            h = h * keep  # zero scan input on padded frames (hygiene; causality already isolates them)
        return x + self.dropout(self.mix(h, lengths))


class _MaskedGroupNorm(torch.autograd.Function):
    """LayerNorm over (group rows x features) per position, statistics over the counted rows only.

    Written out (forward and backward) because autograd through var_mean and two addcmuls makes
    about three times the memory passes of a fused LayerNorm, on the encoder's largest tensor.
    With P the counted rows of a group, n = |P| x features, xhat = (h - mean_P) * rstd_P for every
    row, and g = dL/dxhat: dL/dh_k = rstd * (g_k - [k in P] * (A + xhat_k * B)), where
    A = sum(g) / n and B = sum(g * xhat) / n run over all rows of the group (an uncounted row's
    xhat depends on the counted rows' statistics too).
    """

    @staticmethod
    def forward(ctx, h: Tensor, rows: Tensor, weight: Tensor, bias: Tensor, group: int, eps: float) -> Tensor:
        n_rows, length, _ = h.shape
        windows = n_rows // group
        # Statistics and output in float32 at least, as F.layer_norm computes them under autocast.
        hf = h.float() if h.dtype in (torch.bfloat16, torch.float16) else h
        var_r, mean_r = torch.var_mean(hf, dim=-1, correction=0)  # (N, T) each, one pass
        counted = rows.to(hf.dtype).reshape(windows, group, 1)
        count = counted.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean_r = mean_r.reshape(windows, group, length)
        mean = (mean_r * counted).sum(dim=1, keepdim=True) / count  # (W, 1, T)
        var = ((var_r.reshape(windows, group, length) + (mean_r - mean).square()) * counted).sum(
            dim=1, keepdim=True) / count
        rstd = torch.rsqrt(var + eps)
        scale = rstd.expand(-1, group, -1).reshape(n_rows, length, 1)
        shift = (-mean * rstd).expand(-1, group, -1).reshape(n_rows, length, 1)
        xhat = torch.addcmul(shift, hf, scale)
        ctx.save_for_backward(xhat, scale, counted, count, weight)
        ctx.group, ctx.input_dtype = group, h.dtype
        return torch.addcmul(bias.to(hf.dtype), xhat, weight.to(hf.dtype))

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        xhat, scale, counted, count, weight = ctx.saved_tensors
        group = ctx.group
        n_rows, length, features = xhat.shape
        windows = n_rows // group
        grad_out = grad_out.to(xhat.dtype)
        grad_weight = (grad_out * xhat).sum(dim=(0, 1)).to(weight.dtype)
        grad_bias = grad_out.sum(dim=(0, 1)).to(weight.dtype)
        g = grad_out * weight.to(xhat.dtype)
        n = count * features  # (W, 1, 1)
        a = g.sum(dim=-1).reshape(windows, group, length).sum(dim=1, keepdim=True) / n  # (W, 1, T)
        b = (g * xhat).sum(dim=-1).reshape(windows, group, length).sum(dim=1, keepdim=True) / n
        rstd = scale.reshape(windows, group, length)
        coef_a = (rstd * a * counted).reshape(n_rows, length, 1)
        coef_b = (rstd * b * counted).reshape(n_rows, length, 1)
        grad_h = torch.addcmul(torch.addcmul(-coef_a, g, scale), xhat, -coef_b)
        return grad_h.to(ctx.input_dtype), None, grad_weight, grad_bias, None, None


def _grouped_layer_norm(norm: nn.LayerNorm, h: Tensor, group: int, rows: Tensor | None = None) -> Tensor:
    """`norm` on h (N, T, c), with statistics over the c features of `group` consecutive rows.

    `rows` (N,) True for a row that counts, False for one that does not (an absent electrode): the
    statistics are then those of the counted rows alone, so an uncounted row's values change no
    other row's output (`_MaskedGroupNorm`: per-row mean and variance pooled over the group,
    mean = avg(m_r), var = avg(v_r + (m_r - mean)^2), exactly the joint statistics).
    """
    if rows is not None:
        return _MaskedGroupNorm.apply(h, rows, norm.weight, norm.bias, group, norm.eps)
    if group == 1:
        return norm(h)
    n_rows, length, features = h.shape
    joint = h.reshape(n_rows // group, group, length, features).transpose(1, 2)
    joint = F.layer_norm(joint, (group, features), eps=norm.eps)
    return joint.transpose(1, 2).reshape(n_rows, length, features) * norm.weight + norm.bias


class PerElectrodeEncoder(nn.Module):
    """Samples -> frames: one temporal conv stack applied to every electrode alone, then pooled
    across electrodes.

    Every electrode shares the filters, so a rhythm learnt at one site is recognised at every site
    (a focal onset at a site that rarely seizes in training is not missed). Strided Conv1d stages
    (Conv -> LayerNorm over channels -> GELU) downsample T to frames; the LayerNorms pool their
    statistics over the window's electrodes, so relative amplitude survives. Max and mean over
    electrodes are site-invariant, and a small per-electrode projection kept in electrode order says
    where the activity is (eye and chewing artifacts are frontal and temporal).

    Missing electrodes: `present` (B, C) marks the electrodes a window has. An absent electrode's
    input row is replaced by zeros, it is left out of the LayerNorm statistics and of the max and
    mean, and its spatial features are zeroed, so its values cannot change the output; the mask
    itself is appended to the pooled features, so the network knows which sites it is not seeing.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        spf = samples_per_frame(cfg)
        self.strides = encoder_strides(spf, len(cfg.encoder_channels))
        if math.prod(self.strides) != spf:
            raise ConfigError(
                f"model.encoder_channels: needs at least one stage to downsample {spf}x to the frame rate"
            )
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = 1
        for c_out, stride in zip(cfg.encoder_channels, self.strides, strict=True):
            kernel, pad = _stage_geometry(stride)
            self.convs.append(nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad))
            # Per-position norm: GroupNorm/BatchNorm would pool statistics over time, leaking padding.
            self.norms.append(nn.LayerNorm(c_out))
            c_in = c_out
        features = c_in
        self.spatial = nn.Linear(features, cfg.encoder_spatial_channels) if cfg.encoder_spatial_channels else None
        # max, mean, per-electrode spatial features, and the presence mask (one value per electrode)
        pooled = 2 * features + cfg.in_channels * cfg.encoder_spatial_channels + cfg.in_channels
        self.proj = nn.Linear(pooled, cfg.d_model)

    def temporal(self, x: Tensor, keep: Tensor | None, group: int, rows: Tensor | None = None) -> Tensor:
        """x (N, 1, T), keep (N, 1, T) or None -> (N, features, T / stride).

        Rows come in consecutive groups of `group` (the electrodes of one window) that share each
        LayerNorm's statistics per position, so the norm keeps the amplitude of one row relative
        to the others instead of scaling every row to unit variance. `rows` (N,) bool says which
        rows count in those statistics (None: all).
        """
        if keep is not None:
            x = x * keep
        for conv, norm, stride in zip(self.convs, self.norms, self.strides, strict=True):
            x = F.gelu(_grouped_layer_norm(norm, conv(x).transpose(1, 2), group, rows)).transpose(1, 2)
            if keep is not None:
                # Zero padded positions at this resolution, so the next conv sees exactly the zero
                # padding it would see at the end of the unpadded sequence.
                keep = keep[..., ::stride]
                x = x * keep
        return x

    def forward(self, x: Tensor, sample_mask: Tensor | None = None, present: Tensor | None = None) -> Tensor:
        """x (B, C, T), T a multiple of the total stride; present (B, C) bool or None (all present)
        -> (B, T / stride, d_model)."""
        batch, electrodes, length = x.shape
        keep = None
        if sample_mask is not None:
            keep = sample_mask[:, None, :].to(x.dtype).repeat_interleave(electrodes, dim=0)
        rows = None
        if present is not None:
            # where, not a product: an absent row holding NaN or inf must not leak through 0 * x.
            x = torch.where(present[:, :, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
            rows = present.reshape(batch * electrodes)
        h = self.temporal(x.reshape(batch * electrodes, 1, length), keep, group=electrodes, rows=rows)
        h = h.reshape(batch, electrodes, h.shape[1], h.shape[2]).permute(0, 3, 1, 2)  # (B, F, C, features)
        frames = h.shape[1]
        if present is None:
            parts = [h.amax(dim=2), h.mean(dim=2)]
            spatial = None if self.spatial is None else self.spatial(h)
            mask = torch.ones((batch, frames, electrodes), dtype=h.dtype, device=h.device)
        else:
            on = present[:, None, :, None]  # (B, 1, C, 1)
            count = present.sum(dim=1).to(h.dtype)[:, None, None]  # (B, 1, 1); >= 1 (Detector checks)
            parts = [h.masked_fill(~on, float("-inf")).amax(dim=2), (h * on).sum(dim=2) / count]
            spatial = None if self.spatial is None else self.spatial(h) * on
            mask = present[:, None, :].to(h.dtype).expand(batch, frames, electrodes)
        if spatial is not None:
            parts.append(spatial.flatten(2))
        parts.append(mask)
        return self.proj(torch.cat(parts, dim=-1))


class Detector(nn.Module):
    """(B, in_channels, T) EEG at 256 Hz -> (B, F) seizure logits, one per frame."""

    def __init__(self, cfg: ModelConfig, mamba_impl: str = "auto"):
        super().__init__()
        self.cfg = cfg
        self.samples_per_frame = samples_per_frame(cfg)
        self.mamba_impl_used = resolve_mamba_impl(mamba_impl)
        log.info("detector: mamba_impl=%s -> using %s Mamba-2 blocks", mamba_impl, self.mamba_impl_used)
        self.encoder = PerElectrodeEncoder(cfg)
        self.layers = nn.ModuleList(BiMambaLayer(cfg, self.mamba_impl_used) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 1)

    def frames_for(self, n_samples: int) -> int:
        """Frames produced for `n_samples` input samples (a partial last frame counts, zero-padded)."""
        return frames_for(self.cfg, n_samples)

    def forward(self, x: Tensor, frame_mask: Tensor | None = None, present: Tensor | None = None) -> Tensor:
        """x (B, C, T); frame_mask (B, F) bool prefix mask or None; present (B, C) bool or None (all
        electrodes present) -> logits (B, F). An absent electrode's row does not change the output."""
        if x.dim() != 3 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"expected x of shape (B, {self.cfg.in_channels}, T), got {tuple(x.shape)}")
        if present is not None:
            if present.shape != x.shape[:2]:
                raise ValueError(f"present shape {tuple(present.shape)} != (batch, electrodes) {tuple(x.shape[:2])}")
            present = present.to(device=x.device, dtype=torch.bool)
            if bool(present.all()):
                present = None  # the unmasked path computes the same, in fewer passes
            elif not bool(present.any(dim=1).all()):
                raise ValueError("present: every window needs at least one present electrode")
        n_frames = self.frames_for(x.shape[-1])
        pad = n_frames * self.samples_per_frame - x.shape[-1]
        if pad:
            x = F.pad(x, (0, pad))
        lengths = keep = sample_mask = None
        if frame_mask is not None:
            if frame_mask.shape != (x.shape[0], n_frames):
                raise ValueError(
                    f"frame_mask shape {tuple(frame_mask.shape)} != (batch, frames) {(x.shape[0], n_frames)}"
                )
            frame_mask = frame_mask.to(device=x.device, dtype=torch.bool)
            lengths = prefix_lengths(frame_mask)
            keep = frame_mask[:, :, None].to(x.dtype)
            sample_mask = frame_mask.repeat_interleave(self.samples_per_frame, dim=1)
        h = self.encoder(x, sample_mask, present)
        for layer in self.layers:
            if keep is not None:
                h = h * keep
            h = layer(h, lengths, keep)
        logits = self.head(self.final_norm(h)).squeeze(-1)
        if frame_mask is not None:
            logits = logits.masked_fill(~frame_mask, PAD_LOGIT)
        return logits


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_model(cfg: ModelConfig) -> str:
    """A layer table (output shape for one 60 s window, parameters) and the total parameter count."""
    model = Detector(cfg, mamba_impl="torch")  # building never needs the kernels
    spf = model.samples_per_frame
    t = 60 * SAMPLE_RATE_HZ
    frames = model.frames_for(t)
    rows: list[tuple[str, str, int]] = [("input", f"{cfg.in_channels} x {t}", 0)]
    length = frames * spf
    for i, (conv, norm) in enumerate(zip(model.encoder.convs, model.encoder.norms, strict=True)):
        length //= conv.stride[0]
        desc = f"encoder.{i} Conv1d k{conv.kernel_size[0]} s{conv.stride[0]} + LayerNorm + GELU (per electrode)"
        rows.append((desc, f"{cfg.in_channels} x {conv.out_channels} x {length}",
                     count_parameters(conv) + count_parameters(norm)))
    if model.encoder.spatial is not None:
        spatial = model.encoder.spatial
        desc = f"encoder.spatial Linear {spatial.in_features} -> {spatial.out_features} (per electrode)"
        rows.append((desc, f"{frames} x {cfg.in_channels} x {spatial.out_features}", count_parameters(spatial)))
    proj = model.encoder.proj
    desc = "encoder.proj Linear (max, mean over present electrodes + spatial + presence mask)"
    rows.append((desc, f"{frames} x {cfg.d_model}", count_parameters(proj)))
    for i, layer in enumerate(model.layers):
        blk = layer.fwd
        desc = (
            f"layers.{i} BiMamba2 (2 x d_inner {blk.d_inner}, {blk.nheads} heads x {blk.headdim}, "
            f"d_state {cfg.d_state})"
        )
        rows.append((desc, f"{frames} x {cfg.d_model}", count_parameters(layer)))
    rows.append(("final_norm LayerNorm", f"{frames} x {cfg.d_model}", count_parameters(model.final_norm)))
    rows.append(("head Linear -> logit", f"{frames}", count_parameters(model.head)))
    total = count_parameters(model)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "output (60 s)", 0)])
    lines = [
        (
            f"Detector: {cfg.n_layers} bidirectional Mamba-2 layers, d_model {cfg.d_model}, "
            f"{cfg.frame_rate_hz:g} Hz frames ({spf} samples at {SAMPLE_RATE_HZ} Hz)"
        ),
        f"{'layer':<{w0}}  {'output (60 s)':<{w1}}  {'params':>12}",
        "-" * (w0 + w1 + 16),
    ]
    lines += [f"{name:<{w0}}  {shape:<{w1}}  {n:>12,}" for name, shape, n in rows]
    lines.append("-" * (w0 + w1 + 16))
    lines.append(f"{'total parameters':<{w0}}  {'':<{w1}}  {total:>12,}  ({total / 1e6:.2f} M)")
    return "\n".join(lines)
