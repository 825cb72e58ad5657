"""CPU speed of the detector params.yaml trains, against the fastest CPU Mamba implementations we can
install, measured in one run, timed the same way.

    python benchmarks/bench_model_cpu.py [--reps 5] [--threads N] [--quick]

Every model is the same detector (params.yaml's encoder, `model.n_layers` bidirectional layers, head)
with only the Mamba blocks swapped, so the ratios measure the Mamba implementation inside the network
we train:

- ours: `szflow.model.mamba_torch.Mamba2Torch`, the chunked SSD Mamba-2 (what `mamba_impl: auto`
  runs on a CPU);
- mamba-2 (transformers): `transformers`' `Mamba2Mixer` on its pure-PyTorch path (the fallback it
  uses without the CUDA kernels), loaded with *our* weights, so its logits must equal ours: the
  printed max abs difference is the correctness check of the run;
- mamba-1 (mambapy): `mambapy.mamba.MambaBlock` with the parallel scan (`pscan=True`), same d_model,
  d_state, expand, d_conv, two passes per layer as ours (its own weights: Mamba-1 has other
  parameters). mambapy's `mamba2` module needs mamba_ssm's Triton kernels, so it cannot run on a CPU.

Training step: forward + loss (BCE with `train.pos_weight`) + backward at the local profile's
`train_batch_size` and `sampler.window_s`, under the profile's precision as resolved on this CPU
(`szflow.inference.resolve_precision`: bf16 autocast where the CPU has AVX512-BF16 or AMX), as the
training loop runs it. Inference: forward only at `inference_batch_size`, same precision. Each
configuration is warmed up, then timed `--reps` times, interleaved with the others; best and median
are printed, ratios use the best. A ratio > 1 means ours is faster. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.nn.functional as F
from common import REPO_ROOT, emit, interleaved_times, print_header, summarise
from torch import nn

from szflow.config import load_params
from szflow.inference import autocast, resolve_precision
from szflow.model import Detector
from szflow.model.detector import count_parameters

# Set by an issue for the CPU path: ours at least 2x faster than mambapy's Mamba per training step,
# and inference at most 30 s per EEG hour.
TARGET_VS_MAMBAPY = 2.0
TARGET_INFERENCE_S_PER_EEG_HOUR = 30.0


def swap_blocks(model: Detector, make) -> Detector:
    """`model` with every layer's forward and backward Mamba block replaced by `make(block)`."""
    for layer in model.layers:
        layer.fwd = make(layer.fwd)
        layer.bwd = make(layer.bwd)
    return model


def transformers_twin(ours: Detector) -> Detector | None:
    """A copy of `ours` whose Mamba-2 blocks are transformers' Mamba2Mixer holding the same weights."""
    try:
        from transformers.models.mamba2.configuration_mamba2 import Mamba2Config
        from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    hf_logging.set_verbosity_error()  # it warns once per kernel that it runs its PyTorch fallback

    def mixer(block: nn.Module) -> nn.Module:
        config = Mamba2Config(
            hidden_size=block.d_model, state_size=block.d_state, expand=block.expand, conv_kernel=block.d_conv,
            n_groups=block.ngroups, head_dim=block.headdim, num_heads=block.nheads, chunk_size=block.chunk_size,
            use_bias=False, use_conv_bias=True, layer_norm_epsilon=block.norm.eps, num_hidden_layers=1,
        )
        twin = Mamba2Mixer(config, layer_idx=0)
        twin.load_state_dict(block.state_dict(), strict=True)
        return twin

    return swap_blocks(copy.deepcopy(ours), mixer)


def mambapy_detector(params) -> Detector | None:
    try:
        from mambapy.mamba import MambaBlock, MambaConfig
    except ImportError:
        return None
    cfg = params.model
    block_config = MambaConfig(d_model=cfg.d_model, n_layers=1, d_state=cfg.d_state, expand_factor=cfg.expand,
                               d_conv=cfg.d_conv, pscan=True)
    return swap_blocks(Detector(cfg, mamba_impl="torch"), lambda _: MambaBlock(block_config))


def make_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str, pos_weight: float):
    weight = torch.tensor(pos_weight)

    def step() -> None:
        model.train()
        with autocast("cpu", precision):
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=weight)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def make_infer_step(model: nn.Module, x: torch.Tensor, precision: str):
    @torch.no_grad()
    def step() -> None:
        model.eval()
        with autocast("cpu", precision):
            model(x)

    return step


@torch.no_grad()
def max_logit_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference of the logits of two models on `x` (fp32, eval mode)."""
    a.eval()
    b.eval()
    return float((a(x) - b(x)).abs().max())


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 2, 16 s windows, 2 reps (not a measurement)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = print_header("model_cpu")
    params = load_params(REPO_ROOT)
    precision = resolve_precision(params.hardware.precision, "cpu")
    train_batch, infer_batch = params.hardware.train_batch_size, params.hardware.inference_batch_size
    window_s, reps = params.sampler.window_s, args.reps
    if args.quick:
        train_batch, infer_batch, window_s, reps = 2, 2, 16.0, 2
    samples = int(window_s * params.preprocess.sample_rate_hz)

    torch.manual_seed(0)
    models = {"ours": Detector(params.model, mamba_impl="torch")}
    twin = transformers_twin(models["ours"])
    if twin is None:
        print("transformers is not installed: the Mamba-2 baseline is missing (pip install transformers)",
              file=sys.stderr)
    else:
        models["mamba2_transformers"] = twin
    mamba1 = mambapy_detector(params)
    if mamba1 is None:
        print("mambapy is not installed: the Mamba-1 baseline is missing (pip install mambapy)", file=sys.stderr)
    else:
        models["mamba1_mambapy"] = mamba1
    frames = models["ours"].frames_for(samples)
    print(f"# model: params.yaml (per-electrode encoder, {params.model.n_layers} bidirectional layers, "
          f"d_model {params.model.d_model}, d_state {params.model.d_state}, {count_parameters(models['ours']):,} "
          f"parameters); precision {params.hardware.precision} -> {precision}; train batch {train_batch} x "
          f"{window_s:g} s ({frames} frames), inference batch {infer_batch}", flush=True)

    check_x = torch.randn(1, params.model.in_channels, min(samples, 16 * models["ours"].samples_per_frame))
    twin_difference = max_logit_difference(models["ours"], twin, check_x) if twin is not None else None
    if twin_difference is not None:
        print(f"correctness: ours vs transformers' Mamba2Mixer with the same weights, fp32: max abs logit "
              f"difference {twin_difference:.2e}", flush=True)

    x = torch.randn(train_batch, params.model.in_channels, samples)
    y = (torch.rand(train_batch, frames) < 0.3).float()
    xi = torch.randn(infer_batch, params.model.in_channels, samples)
    steps = {}
    for name, model in models.items():
        steps[f"train/{name}"] = make_train_step(model, x, y, precision, params.train.pos_weight)
        steps[f"infer/{name}"] = make_infer_step(model, xi, precision)
    for step in steps.values():
        step()  # warm-up: allocator, oneDNN primitives, autocast caches
    stats = summarise(interleaved_times(steps, reps))
    report(stats, models, machine, params, precision, window_s, train_batch, infer_batch, frames, reps,
           twin_difference, args.quick)
    return 0


def report(stats, models, machine, params, precision, window_s, train_batch, infer_batch, frames, reps,
           twin_difference, quick) -> None:
    windows_per_eeg_hour = 3600.0 / (window_s - params.sampler.inference_overlap_s)
    print(f"{'model':<22}{'params':>12}{'train best s':>14}{'median':>9}{'infer best s':>14}{'median':>9}")
    for name, model in models.items():
        train, infer = stats[f"train/{name}"], stats[f"infer/{name}"]
        print(f"{name:<22}{count_parameters(model):>12,}{train['best_s']:>14.3f}{train['median_s']:>9.3f}"
              f"{infer['best_s']:>14.3f}{infer['median_s']:>9.3f}")
    ours_train, ours_infer = stats["train/ours"]["best_s"], stats["infer/ours"]["best_s"]
    ratios = {}
    for name in models:
        if name != "ours":
            ratios[f"train_vs_{name}"] = round(stats[f"train/{name}"]["best_s"] / ours_train, 2)
            ratios[f"infer_vs_{name}"] = round(stats[f"infer/{name}"]["best_s"] / ours_infer, 2)
    inference_s_per_hour = ours_infer / infer_batch * windows_per_eeg_hour
    for key, value in ratios.items():
        print(f"ratio {key}: {value:.2f}x (baseline time / ours; > 1: ours faster)")
    print(f"ours inference: {inference_s_per_hour:.2f} s per EEG hour ({windows_per_eeg_hour:g} windows/h)")
    emit({
        "benchmark": "model_cpu",
        "quick": quick,
        "machine": machine,
        "precision": precision,
        "train_batch": train_batch,
        "inference_batch": infer_batch,
        "window_s": window_s,
        "frames": frames,
        "reps": reps,
        "params": {name: count_parameters(model) for name, model in models.items()},
        "times": stats,
        "ratios": ratios,
        "ratio": ratios.get("train_vs_mamba2_transformers"),
        "ratio_is": "training step s, transformers Mamba2Mixer (PyTorch path) / ours, same weights",
        "inference_s_per_eeg_hour": round(inference_s_per_hour, 3),
        "max_abs_logit_difference_vs_transformers": twin_difference,
        "targets": {"train_vs_mamba1_mambapy": TARGET_VS_MAMBAPY,
                    "inference_s_per_eeg_hour": TARGET_INFERENCE_S_PER_EEG_HOUR},
        "meets_targets": {
            "train_vs_mamba1_mambapy": (ratios["train_vs_mamba1_mambapy"] >= TARGET_VS_MAMBAPY
                                        if "train_vs_mamba1_mambapy" in ratios else None),
            "inference_s_per_eeg_hour": inference_s_per_hour <= TARGET_INFERENCE_S_PER_EEG_HOUR,
        },
    })


if __name__ == "__main__":
    sys.exit(main())
