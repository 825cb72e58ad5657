"""CPU benchmark of the seed-size detector: our chunked SSD Mamba-2 vs a sequential reference recurrence
vs mambapy's parallel-scan Mamba, all inside the same bidirectional detector, measured in one run.

    python benchmarks/bench_model_cpu.py [--threads 2] [--reps 5] [--quick]

The machine is shared and noisy, so each configuration is timed `reps` times, interleaved with the
others, and the minimum is reported; ratios compare numbers from this same run. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from szflow.config import ModelConfig
from szflow.model import Detector
from szflow.model.detector import count_parameters

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_60S = 60 * 256


def load_reference():
    """The per-time-step oracle lives in the tests (tests/test_model.py); import it from there."""
    spec = importlib.util.spec_from_file_location("_szflow_test_model", ROOT / "tests" / "test_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_mamba2


class ReferenceBlock(nn.Module):
    """Runs a Mamba2Torch block's parameters through the sequential recurrence (conv via F.conv1d,
    so only the SSM's per-step loop differs from ours)."""

    def __init__(self, block: nn.Module, reference):
        super().__init__()
        self.block = block
        self.reference = reference

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.reference(self.block, u, loop_conv=False)


def swap_blocks(model: Detector, make) -> Detector:
    for layer in model.layers:
        layer.fwd = make(layer.fwd)
        layer.bwd = make(layer.bwd)
    return model


def mambapy_detector(cfg: ModelConfig):
    try:
        from mambapy.mamba import MambaBlock, MambaConfig
    except ImportError:
        return None
    mcfg = MambaConfig(
        d_model=cfg.d_model, n_layers=1, d_state=cfg.d_state, expand_factor=cfg.expand,
        d_conv=cfg.d_conv, pscan=True,
    )
    return swap_blocks(Detector(cfg, mamba_impl="torch"), lambda _: MambaBlock(mcfg))


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one forward+backward (optionally under bf16 autocast)."""
    model.train()
    start, cpu = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    loss = F.binary_cross_entropy_with_logits(logits.float(), y)
    loss.backward()
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    model.zero_grad(set_to_none=True)
    return elapsed


@torch.no_grad()
def infer_step(model: nn.Module, x: torch.Tensor, bf16: bool = False) -> tuple[float, float]:
    model.eval()
    start, cpu = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(x)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--reference-frames", type=int, default=240,
                        help="frames for the (slow) reference step; 240 = the full 60 s window")
    parser.add_argument("--quick", action="store_true", help="1 rep, skip the batch-8 training step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps = 1 if args.quick else args.reps

    cfg = ModelConfig()
    ours = Detector(cfg, mamba_impl="torch")
    ref_fn = load_reference()
    reference = swap_blocks(copy.deepcopy(ours), lambda b: ReferenceBlock(b, ref_fn))  # same weights
    theirs = mambapy_detector(cfg)

    x = torch.randn(args.batch, cfg.in_channels, SAMPLES_60S)
    frames = ours.frames_for(SAMPLES_60S)
    y = (torch.rand(args.batch, frames) < 0.3).float()
    ref_samples = args.reference_frames * ours.samples_per_frame
    x_ref, y_ref = x[..., :ref_samples], y[:, : args.reference_frames]

    # Same weights -> same logits (a sanity check that the reference is the same network).
    with torch.no_grad():
        ours.eval()
        reference.eval()
        diff = (ours(x_ref[:1, :, : 32 * 64]) - reference(x_ref[:1, :, : 32 * 64])).abs().max().item()

    train_step(ours, x, y)  # warm-up (allocator, mkldnn primitives)
    if theirs is not None:
        train_step(theirs, x, y)
    # Wall seconds are what matter, but other jobs share these 2 cores: process CPU seconds (not
    # counting time spent waiting for a core) are reported beside them as a steadier cross-check.
    keys = ("ours", "mambapy", "reference", "ours_b8", "infer", "ours_b8_bf16", "infer_bf16")
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu_times: dict[str, list[float]] = {k: [] for k in times}

    def record(key: str, measured: tuple[float, float]) -> None:
        times[key].append(measured[0])
        cpu_times[key].append(measured[1])

    x8 = torch.randn(8, cfg.in_channels, SAMPLES_60S)
    y8 = (torch.rand(8, frames) < 0.3).float()
    xi = torch.randn(args.infer_batch, cfg.in_channels, SAMPLES_60S)
    infer_step(ours, xi)
    for rep in range(reps):
        record("ours", train_step(ours, x, y))
        if theirs is not None:
            record("mambapy", train_step(theirs, x, y))
        if rep == 0:  # one step is plenty for the slow reference
            record("reference", train_step(reference, x_ref, y_ref))
        if not args.quick:
            record("ours_b8", train_step(ours, x8, y8))
            # This CPU has AVX512-BF16: bf16 autocast roughly halves the matmul time.
            record("ours_b8_bf16", train_step(ours, x8, y8, bf16=True))
            record("infer_bf16", infer_step(ours, xi, bf16=True))
        record("infer", infer_step(ours, xi))
        print(f"rep {rep}: " + ", ".join(f"{k}={v[-1]:.3f}s" for k, v in times.items() if v), flush=True)

    best = {k: min(v) for k, v in times.items() if v}
    best_cpu = {k: min(v) for k, v in cpu_times.items() if v}
    # The reference scales linearly in length; if it was run on fewer frames, scale to 240.
    ref_step = best["reference"] * frames / args.reference_frames
    windows_per_hour = 3600 / 60
    result = {
        "benchmark": "model_cpu",
        "threads": args.threads,
        "batch": args.batch,
        "frames": frames,
        "ours_step_s": round(best["ours"], 4),
        "reference_step_s": round(ref_step, 4),
        "reference_frames_timed": args.reference_frames,
        "mambapy_step_s": round(best["mambapy"], 4) if "mambapy" in best else None,
        "ratio": round(ref_step / best["ours"], 2),
        "ratio_vs_mambapy": round(best["mambapy"] / best["ours"], 2) if "mambapy" in best else None,
        "ours_step_s_batch8": round(best["ours_b8"], 4) if "ours_b8" in best else None,
        "inference_s_per_eeg_hour": round(best["infer"] * windows_per_hour / args.infer_batch, 3),
        "ours_step_s_batch8_bf16": round(best["ours_b8_bf16"], 4) if "ours_b8_bf16" in best else None,
        "inference_s_per_eeg_hour_bf16": (
            round(best["infer_bf16"] * windows_per_hour / args.infer_batch, 3) if "infer_bf16" in best else None
        ),
        "params": count_parameters(ours),
        "mambapy_params": count_parameters(theirs) if theirs is not None else None,
        "reference_max_abs_diff": diff,
        "median_s": {k: round(statistics.median(v), 4) for k, v in times.items() if v},
        "process_cpu_s": {k: round(v, 4) for k, v in best_cpu.items()},
        "ratio_cpu_s": round(best_cpu["reference"] * frames / args.reference_frames / best_cpu["ours"], 2),
        "ratio_vs_mambapy_cpu_s": (
            round(best_cpu["mambapy"] / best_cpu["ours"], 2) if "mambapy" in best_cpu else None
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
