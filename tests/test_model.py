"""Model tests: our Mamba-2 block against a per-time-step reference recurrence, detector masking,
implementation selection, checkpoints. Tiny models only (the file runs in seconds)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from szflow.config import ModelConfig, load_params
from szflow.errors import CheckpointError, SzflowError
from szflow.model import (
    PAD_LOGIT,
    Detector,
    Mamba2Torch,
    capture_rng_state,
    describe_model,
    frames_for,
    load_checkpoint,
    load_detector,
    make_mamba_block,
    restore_rng_state,
    save_checkpoint,
)
from szflow.model.detector import (
    BiMambaLayer,
    _grouped_layer_norm,
    _MaskedGroupNorm,
    encoder_strides,
    reverse_valid,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a shared 2-core machine every op then
    waits for a descheduled OpenMP worker (tens of ms per op): run this file single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- the oracle
def reference_mamba2(block: Mamba2Torch, u: torch.Tensor, loop_conv: bool = True) -> torch.Tensor:
    """Mamba-2 block computed step by step from its parameters (the obviously-correct, slow oracle).

    Shares no code with mamba_torch: the causal depthwise conv and the SSM are explicit loops:
        S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T,   y_t = S_t C_t + D x_t
    followed by y * silu(z), RMSNorm per group, and out_proj. `loop_conv=False` (benchmarks only)
    computes the conv with F.conv1d, so that only the sequential SSM recurrence is being timed.
    """
    bsz, length, _ = u.shape
    d_inner, nh, hd, n, g = block.d_inner, block.nheads, block.headdim, block.d_state, block.ngroups
    proj = u @ block.in_proj.weight.T
    z = proj[..., :d_inner]
    xbc_raw = proj[..., d_inner : 2 * d_inner + 2 * g * n]
    dt_raw = proj[..., 2 * d_inner + 2 * g * n :]
    kernel = block.conv1d.weight[:, 0, :]  # (channels, K)
    k_size = kernel.shape[1]
    conv_out = []
    if not loop_conv:
        padded = F.pad(xbc_raw.transpose(1, 2), (k_size - 1, 0))
        conv_out = list(F.conv1d(padded, block.conv1d.weight, block.conv1d.bias, groups=kernel.shape[0]).unbind(2))
    for t in range(length if loop_conv else 0):
        acc = block.conv1d.bias.expand(bsz, -1)
        for k in range(k_size):
            src = t - (k_size - 1) + k  # causal: taps on t-K+1 .. t
            if src >= 0:
                acc = acc + kernel[:, k] * xbc_raw[:, src]
        conv_out.append(acc)
    xbc = F.silu(torch.stack(conv_out, dim=1))
    x = xbc[..., :d_inner].reshape(bsz, length, nh, hd)
    Bm = xbc[..., d_inner : d_inner + g * n].reshape(bsz, length, g, n)
    Cm = xbc[..., d_inner + g * n :].reshape(bsz, length, g, n)
    group_of_head = torch.arange(nh) // (nh // g)
    dt = F.softplus(dt_raw + block.dt_bias)  # (b, l, h)
    A = -torch.exp(block.A_log)
    state = torch.zeros(bsz, nh, hd, n, dtype=u.dtype)
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        b_t = Bm[:, t, group_of_head]  # (b, h, n)
        c_t = Cm[:, t, group_of_head]
        state = decay[:, :, None, None] * state + (dt[:, t, :, None] * x[:, t])[..., None] * b_t[:, :, None, :]
        ys.append((state * c_t[:, :, None, :]).sum(-1) + block.D[:, None] * x[:, t])
    y = torch.stack(ys, dim=1).reshape(bsz, length, d_inner) * F.silu(z)
    gs = block.norm.group_size
    yg = y.reshape(bsz, length, d_inner // gs, gs)
    y = (yg / torch.sqrt(yg.pow(2).mean(-1, keepdim=True) + block.norm.eps)).reshape(bsz, length, d_inner)
    return (y * block.norm.weight) @ block.out_proj.weight.T


def tiny_block(chunk_size: int = 4, **kw) -> Mamba2Torch:
    torch.manual_seed(0)
    args = {"d_model": 16, "d_state": 4, "d_conv": 4, "expand": 2, "headdim": 8, "chunk_size": chunk_size}
    args.update(kw)
    block = Mamba2Torch(**args)
    with torch.no_grad():  # non-trivial D, norm weight and conv bias so every term is tested
        block.D.normal_()
        block.norm.weight.uniform_(0.5, 1.5)
        block.dt_bias.add_(1.0)  # larger dt -> strong decay, exercises the cross-chunk decay terms
    return block


def tiny_config(**kw) -> ModelConfig:
    """params.yaml's model section with a tiny geometry (and `kw`) over it. Validated as a model
    section alone: the project-wide check that in_channels equals the 19 electrodes does not apply to
    a unit test of the network, which takes any channel count."""
    args = {
        "in_channels": 3, "frame_rate_hz": 16.0, "encoder_channels": [4, 8], "n_layers": 2,
        "d_model": 16, "d_state": 4, "d_conv": 4, "expand": 2, "chunk_size": 4, "dropout": 0.0,
    }
    args.update(kw)
    return ModelConfig.model_validate({**load_params(REPO).model.model_dump(), **args})


def project_model() -> ModelConfig:
    """The model params.yaml trains."""
    return load_params(REPO).model


# ----------------------------------------------------------------------------- block vs oracle
@pytest.mark.parametrize("length", [1, 3, 4, 7, 13, 16])
@pytest.mark.parametrize("ngroups", [1, 2])
def test_block_matches_reference_forward_and_gradients(length: int, ngroups: int) -> None:
    block = tiny_block(chunk_size=4, ngroups=ngroups)
    u = torch.randn(2, length, 16, requires_grad=True)
    out = block(u)
    ref = reference_mamba2(block, u)
    assert out.shape == (2, length, 16)
    assert (out - ref).abs().max().item() <= 1e-4
    assert (reference_mamba2(block, u, loop_conv=False) - ref).abs().max().item() <= 1e-5

    weight = torch.randn_like(out)
    params = [u, *block.parameters()]
    grads = torch.autograd.grad((out * weight).sum(), params)
    ref_grads = torch.autograd.grad((ref * weight).sum(), params)
    names = ["input", *(name for name, _ in block.named_parameters())]
    for name, got, want in zip(names, grads, ref_grads, strict=True):
        assert (got - want).abs().max().item() <= 1e-4, name


def test_block_chunk_size_does_not_change_result() -> None:
    block = tiny_block(chunk_size=64)
    u = torch.randn(1, 37, 16)
    base = block(u)
    for chunk in (1, 5, 8, 37):
        block.chunk_size = chunk
        assert torch.allclose(block(u), base, atol=1e-5), chunk


def test_block_parameter_names_and_shapes_match_mamba2_layout() -> None:
    block = Mamba2Torch(d_model=512, d_state=16, d_conv=4, expand=2, chunk_size=64)
    shapes = {name: tuple(p.shape) for name, p in block.named_parameters()}
    # mamba_ssm.Mamba2(512, d_state=16, headdim=64): d_inner 1024, 16 heads, in_proj -> 2*1024+2*16+16
    assert shapes == {
        "in_proj.weight": (2096, 512),
        "conv1d.weight": (1056, 1, 4),
        "conv1d.bias": (1056,),
        "dt_bias": (16,),
        "A_log": (16,),
        "D": (16,),
        "norm.weight": (1024,),
        "out_proj.weight": (512, 1024),
    }
    dt = F.softplus(block.dt_bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    A = torch.exp(block.A_log)
    assert A.min() >= 1 and A.max() <= 16
    assert all(getattr(p, "_no_weight_decay", False) for p in (block.dt_bias, block.A_log, block.D))


# ----------------------------------------------------------------------------- bidirectional layer
def test_backward_half_is_forward_block_on_reversed_input() -> None:
    torch.manual_seed(1)
    layer = BiMambaLayer(tiny_config(), impl="torch")
    h = torch.randn(2, 11, 16)
    both = layer.mix(h)
    fwd_only = layer.fwd(h)
    bwd_half = layer.bwd(h.flip(1)).flip(1)
    assert torch.allclose(both, fwd_only + bwd_half, atol=1e-6)
    # the backward half is anti-causal: changing the first step leaves later outputs of bwd unchanged
    h2 = h.clone()
    h2[:, 0] += 1.0
    assert torch.allclose(layer.bwd(h2.flip(1)).flip(1)[:, 1:], bwd_half[:, 1:], atol=1e-6)


def test_reverse_valid_keeps_padding_in_place() -> None:
    x = torch.arange(10.0).view(1, 5, 2).repeat(2, 1, 1)
    out = reverse_valid(x, torch.tensor([5, 3]))
    assert torch.equal(out[0], x[0].flip(0))
    assert torch.equal(out[1, :3], x[1, :3].flip(0)) and torch.equal(out[1, 3:], x[1, 3:])
    assert torch.equal(reverse_valid(out, torch.tensor([5, 3])), x)


# ----------------------------------------------------------------------------- detector
def test_detector_shapes_and_frames(caplog) -> None:
    cfg = tiny_config()
    with caplog.at_level("INFO", logger="szflow.model"):
        model = Detector(cfg, mamba_impl="torch").eval()
    assert model.mamba_impl_used == "torch"
    assert "using torch Mamba-2 blocks" in caplog.text
    assert model.samples_per_frame == 16
    assert model.frames_for(160) == 10 and model.frames_for(161) == 11 and model.frames_for(1) == 1
    assert frames_for(project_model(), 15_360) == 240
    for n_samples in (16, 160, 170):
        logits = model(torch.randn(2, 3, n_samples))
        assert logits.shape == (2, model.frames_for(n_samples))
    with pytest.raises(ValueError):
        model(torch.randn(2, 4, 160))


def test_detector_seed_geometry() -> None:
    assert encoder_strides(64, 3) == [4, 4, 4]
    assert math.prod(encoder_strides(16, 3)) == 16
    text = describe_model(project_model())  # 6 layers, d_model 512
    assert "total parameters" in text and "layers.5" in text and "per electrode" in text
    assert "240 x 512" in text  # 60 s -> 240 frames at 4 Hz


def test_padded_frames_do_not_influence_valid_frames() -> None:
    torch.manual_seed(2)
    cfg = tiny_config(n_layers=2, chunk_size=3)
    model = Detector(cfg, mamba_impl="torch").eval()
    spf = model.samples_per_frame
    frames, valid = [13, 9], [13, 6]
    x = torch.randn(2, 3, frames[0] * spf)
    mask = torch.arange(frames[0])[None, :] < torch.tensor(valid)[:, None]
    with torch.no_grad():
        padded = model(x, mask)
        garbage = x.clone()
        garbage[1, :, valid[1] * spf :] = 100.0 * torch.randn_like(garbage[1, :, valid[1] * spf :])
        padded_garbage = model(garbage, mask)
        for row, n in enumerate(valid):
            alone = model(x[row : row + 1, :, : n * spf])[0]
            assert (padded[row, :n] - alone).abs().max().item() <= 1e-5
            assert (padded_garbage[row, :n] - alone).abs().max().item() <= 1e-5
    assert torch.all(padded[1, valid[1] :] == PAD_LOGIT)
    with pytest.raises(ValueError, match="prefix"):
        model(x, torch.tensor([[True] * 13, [True, False] + [True] * 11]))


def test_per_electrode_encoder_is_site_invariant_without_its_spatial_part() -> None:
    """Shared filters + max/mean pooling: permuting the electrodes leaves the frames unchanged; the
    spatial part (electrode-ordered features) is what lets the model tell sites apart."""
    torch.manual_seed(6)
    x = torch.randn(2, 3, 160)
    permuted = x[:, [2, 0, 1]]
    with torch.no_grad():
        pooled_only = Detector(tiny_config(encoder_spatial_channels=0), "torch").encoder
        assert (pooled_only(x) - pooled_only(permuted)).abs().max().item() <= 1e-5
        with_sites = Detector(tiny_config(encoder_spatial_channels=2), "torch").encoder
        assert (with_sites(x) - with_sites(permuted)).abs().max().item() > 1e-3


def test_grouped_layer_norm_pools_statistics_over_the_group() -> None:
    torch.manual_seed(7)
    norm = torch.nn.LayerNorm(4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    h = torch.randn(6, 5, 4)  # 2 windows x 3 electrodes, 5 positions, 4 features
    h[1] *= 10.0  # a loud electrode stays louder than its neighbours after the norm
    got = _grouped_layer_norm(norm, h, group=3)
    for window in range(2):
        rows = h[3 * window : 3 * window + 3]  # (3, 5, 4)
        for t in range(5):
            block = rows[:, t, :]
            want = (block - block.mean()) / torch.sqrt(block.var(unbiased=False) + norm.eps)
            want = want * norm.weight + norm.bias
            assert (got[3 * window : 3 * window + 3, t, :] - want).abs().max().item() <= 1e-5
    plain = _grouped_layer_norm(torch.nn.LayerNorm(4), h, group=3)
    assert plain[1].std() > 2 * plain[0].std()  # a per-row norm would give both ~unit variance
    assert torch.equal(_grouped_layer_norm(norm, h, group=1), norm(h))


def test_detector_gradients_flow_and_padding_gets_none() -> None:
    torch.manual_seed(3)
    model = Detector(tiny_config(), mamba_impl="torch")
    x = torch.randn(2, 3, 160, requires_grad=True)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    model(x, mask).masked_fill(~mask, 0).sum().backward()
    assert x.grad[1, :, 7 * 16 :].abs().max() == 0  # padded samples are masked out
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- missing electrodes
def test_an_absent_electrodes_values_do_not_change_the_output() -> None:
    """The presence mask: random values, huge values or NaN in an absent electrode's row give the
    same logits bit for bit, with and without padded frames."""
    torch.manual_seed(11)
    model = Detector(tiny_config(in_channels=5, n_layers=2), mamba_impl="torch").eval()
    x = torch.randn(3, 5, 160)
    present = torch.ones(3, 5, dtype=torch.bool)
    present[0, [1, 3]] = False
    present[2, 4] = False
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 6:] = False
    with torch.no_grad():
        for frame_mask in (None, mask):
            want = model(x, frame_mask, present)
            for garbage in (torch.randn(2, 160) * 50.0, torch.full((2, 160), float("nan")),
                            torch.full((2, 160), 1e30)):
                other = x.clone()
                other[0, [1, 3]] = garbage
                other[2, 4] = garbage[0]
                assert torch.equal(model(other, frame_mask, present), want)
            # Absence is not zero-filling: the same zeros marked present give other logits.
            zeroed = x.clone()
            zeroed[0, [1, 3]] = 0.0
            assert (model(zeroed, frame_mask)[0] - want[0]).abs().max().item() > 1e-4
            # Windows with every electrode present are unaffected by their neighbours' masks.
            alone = model(x[1:2], None if frame_mask is None else frame_mask[1:2])
            assert (want[1] - alone[0]).abs().max().item() <= 1e-5


def test_all_present_mask_is_the_unmasked_model_and_an_empty_window_is_refused() -> None:
    torch.manual_seed(12)
    model = Detector(tiny_config(), mamba_impl="torch").eval()
    x = torch.randn(2, 3, 160)
    with torch.no_grad():
        assert torch.equal(model(x, None, torch.ones(2, 3, dtype=torch.bool)), model(x))
        with pytest.raises(ValueError, match="at least one present electrode"):
            model(x, None, torch.tensor([[True, True, True], [False, False, False]]))
        with pytest.raises(ValueError, match="present shape"):
            model(x, None, torch.ones(2, 4, dtype=torch.bool))


def test_masked_grouped_layer_norm_uses_only_the_present_rows() -> None:
    torch.manual_seed(13)
    norm = torch.nn.LayerNorm(4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    h = torch.randn(6, 5, 4)  # 2 windows x 3 electrodes
    rows = torch.tensor([True, False, True, True, True, True])
    got = _grouped_layer_norm(norm, h, 3, rows)
    present = h[[0, 2]]  # window 0 without its absent electrode 1
    want = _grouped_layer_norm(norm, present, 2)
    assert (got[[0, 2]] - want).abs().max().item() <= 1e-5
    assert (got[3:] - _grouped_layer_norm(norm, h[3:], 3)).abs().max().item() <= 1e-5
    assert (_grouped_layer_norm(norm, h, 3, torch.ones(6, dtype=torch.bool)) -
            _grouped_layer_norm(norm, h, 3)).abs().max() <= 1e-5
    # Its hand-written backward (`_MaskedGroupNorm`) against finite differences, in float64.
    norm64 = torch.nn.LayerNorm(4).double()
    with torch.no_grad():
        norm64.weight.uniform_(0.5, 1.5)
        norm64.bias.normal_()
    h64 = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    weight = norm64.weight.detach().clone().requires_grad_(True)
    bias = norm64.bias.detach().clone().requires_grad_(True)

    assert torch.autograd.gradcheck(lambda v, w, b: _MaskedGroupNorm.apply(v, rows, w, b, 3, 1e-5),
                                    (h64, weight, bias))


def test_absent_electrodes_get_no_gradient() -> None:
    torch.manual_seed(14)
    model = Detector(tiny_config(), mamba_impl="torch")
    x = torch.randn(2, 3, 160, requires_grad=True)
    present = torch.tensor([[True, False, True], [True, True, True]])
    model(x, None, present).sum().backward()
    assert x.grad[0, 1].abs().max() == 0 and x.grad[0, 0].abs().max() > 0


# ----------------------------------------------------------------------------- implementation choice
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA kernels")
def test_cuda_impl_raises_without_kernels() -> None:
    with pytest.raises(SzflowError, match=r"mamba_impl: cuda but mamba_ssm is not installed"):
        make_mamba_block(16, 4, 4, 2, 8, impl="cuda")
    with pytest.raises(SzflowError):
        Detector(tiny_config(), mamba_impl="cuda")
    block = make_mamba_block(16, 4, 4, 2, 8, impl="auto")
    assert isinstance(block, Mamba2Torch) and block.mamba_impl_used == "torch"
    with pytest.raises(SzflowError, match="unknown value"):
        make_mamba_block(16, 4, 4, 2, 8, impl="triton")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_block_matches_mamba_ssm_on_same_weights() -> None:
    pytest.importorskip("mamba_ssm")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    ours = make_mamba_block(256, 16, 4, 2, 64, impl="torch").cuda()
    theirs = make_mamba_block(256, 16, 4, 2, 64, impl="cuda").cuda()
    assert theirs.mamba_impl_used == "cuda"
    theirs.load_state_dict(ours.state_dict())  # strict: names and shapes must agree
    u = torch.randn(2, 203, 256, device="cuda")  # not a multiple of the chunk size
    outs, grads = [], []
    for block in (ours, theirs):
        x = u.clone().requires_grad_(True)
        y = block(x)
        y.pow(2).mean().backward()
        outs.append(y.detach())
        grads.append((x.grad, block.in_proj.weight.grad, block.A_log.grad))
    # mamba_ssm's Triton kernels may use TF32 inside fp32 dots, hence a tolerance of a few 1e-3.
    torch.testing.assert_close(outs[0], outs[1], atol=5e-3, rtol=5e-3)
    for got, want in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(got, want, atol=5e-3, rtol=5e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_detector_masking_with_mamba_ssm_kernels() -> None:
    pytest.importorskip("mamba_ssm")
    torch.manual_seed(0)
    cfg = tiny_config(frame_rate_hz=4.0, encoder_channels=[8, 16, 32], d_model=64, chunk_size=16)
    model = Detector(cfg, mamba_impl="cuda").cuda().eval()
    x = torch.randn(2, 3, 40 * 64, device="cuda")
    mask = torch.ones(2, 40, dtype=torch.bool, device="cuda")
    mask[1, 25:] = False
    with torch.no_grad():
        torch.testing.assert_close(model(x, mask)[1, :25], model(x[1:, :, : 25 * 64])[0], atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path) -> None:
    torch.manual_seed(4)
    cfg = tiny_config()
    model = Detector(cfg, mamba_impl="torch").eval()
    # An optimizer-shaped state (int keys, tuples, tensors) without torch.optim, whose first use
    # costs seconds of imports; the training tests cover a real optimizer's resume.
    optimizer_state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 2)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "foreach": None}],
    }
    path = tmp_path / "models" / "last.pt"
    save_checkpoint(
        path, model=model, model_config=cfg, step=7, epoch=1, metrics={"auroc": 0.75, "n": 3},
        params_hash="abc", training_state={"optimizer": optimizer_state, "rng": capture_rng_state()},
    )
    # weights_only=True loads it (no pickled classes inside)
    assert torch.load(path, weights_only=True)["step"] == 7
    loaded, ckpt = load_detector(path, expected_config=cfg, mamba_impl="auto")
    assert (ckpt.step, ckpt.epoch, ckpt.metrics, ckpt.params_hash) == (7, 1, {"auroc": 0.75, "n": 3}, "abc")
    assert ckpt.model_config == cfg and loaded.mamba_impl_used == "torch"
    x = torch.randn(2, 3, 160)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    stored = ckpt.training_state["optimizer"]
    assert torch.equal(stored["state"][0]["exp_avg"], optimizer_state["state"][0]["exp_avg"])
    assert stored["param_groups"] == optimizer_state["param_groups"]
    restore_rng_state(ckpt.training_state["rng"])
    a = torch.rand(3)
    restore_rng_state(ckpt.training_state["rng"])
    assert torch.equal(a, torch.rand(3))


def test_checkpoint_bytes_do_not_depend_on_the_write(tmp_path) -> None:
    """The same checkpoint saved twice is the same file, byte for byte (DVC hashes it)."""
    torch.manual_seed(5)
    cfg = tiny_config()
    model = Detector(cfg, mamba_impl="torch")
    paths = [tmp_path / "one" / "best.pt", tmp_path / "two" / "best.pt"]
    for path in paths:
        save_checkpoint(path, model=model, model_config=cfg, step=3, metrics={"auroc": 0.5})
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_checkpoint_config_mismatch_lists_keys(tmp_path) -> None:
    cfg = tiny_config()
    path = tmp_path / "best.pt"
    save_checkpoint(path, model=Detector(cfg, mamba_impl="torch"), model_config=cfg, step=1)
    other = tiny_config(d_model=32, n_layers=3)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expected_config=other)
    message = str(err.value)
    assert str(path) in message and "d_model: checkpoint 16 != expected 32" in message
    assert "n_layers: checkpoint 2 != expected 3" in message and "chunk_size" not in message


def test_checkpoint_unreadable_names_file(tmp_path) -> None:
    cfg = tiny_config()
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=Detector(cfg, mamba_impl="torch"), model_config=cfg, step=1)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: unreadable or truncated"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"training_state\.bad"):
        save_checkpoint(path, model=Detector(cfg, mamba_impl="torch"), model_config=cfg, step=2,
                        training_state={"bad": object()})
    assert load_checkpoint(path).step == 1  # the failed save left the previous file intact
