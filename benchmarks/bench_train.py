"""Training throughput: the full training loop versus the model's own step, in one run.

  model-only  forward + masked loss + backward + grad clipping + AdamW step on pre-made tensors
  loop        `Trainer.fit` (the train stage's loop): sampler + window reads + collation + the same step + LR schedule +
              DVCLive logging + progress bar, timed between consecutive steps (on_step hook), so
              the one-off setup and the final validation are not counted

The model-only phase runs before and after the loop and the two are averaged, so a change in load
from other processes during the run hits both sides alike. Data: the train cache under
`data/cache/train` when present, else a cache built with `build_cache` from 3 h of noise
recordings. The model is the one in params.yaml unless --tiny (or --quick: tiny model, 2 steps).
Batch size: the hardware profile's train_batch_size. Target: ratio >= 0.9.

    python benchmarks/bench_train.py [--steps 4] [--tiny] [--quick]

Prints a table, then one JSON line:
  {"benchmark": "train", "loop_windows_per_s": ..., "model_only_windows_per_s": ..., "ratio": ...}
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

import torch
from common import REPO_ROOT, emit, print_header, write_noise_preprocess

from szflow.cache import SplitStore, build_cache
from szflow.config import Params, load_params
from szflow.inference import autocast, resolve_precision
from szflow.model import Detector
from szflow.stages.train import train_paths
from szflow.train.losses import masked_loss
from szflow.train.trainer import Trainer

TINY = {"model.n_layers": 1, "model.d_model": 32, "model.d_state": 4, "model.encoder_channels": [8, 16],
        "model.chunk_size": 64}
TARGET_RATIO = 0.9


def bench_params(steps: int, tiny: bool) -> Params:
    """params.yaml with a run of `steps` steps that validates and checkpoints only at the end."""
    overrides = {"train.max_steps": steps, "train.eval_every_steps": steps, "train.checkpoint_every_steps": steps,
                 "train.warmup_steps": 1, "train.patience_evals": 100, "hardware.wandb_mode": "disabled"}
    return load_params(REPO_ROOT, overrides={**overrides, **(TINY if tiny else {})})


def model_only(params: Params, steps: int) -> list[float]:
    """Seconds per step of the bare model step on tensors made once."""
    torch.manual_seed(0)
    model = Detector(params.model, mamba_impl="torch").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = params.hardware.train_batch_size
    samples = round(params.sampler.window_s * params.preprocess.sample_rate_hz)
    x = torch.randn(batch, params.model.in_channels, samples)
    frames = model.frames_for(samples)
    y = (torch.rand(batch, frames) > 0.7).float()
    valid = torch.ones(batch, frames, dtype=torch.bool)
    times = []
    for _ in range(steps + 1):  # the first step allocates; not counted
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast("cpu", params.hardware.precision):  # the loop's precision, from the profile
            logits = model(x)
        loss = masked_loss(logits, y, valid, pos_weight=params.train.pos_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.train.grad_clip)
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return times[1:]


def full_loop(params: Params, workdir: Path, steps: int) -> list[float]:
    """Seconds between consecutive steps of the real training loop (first two not counted)."""
    stamps: list[float] = []
    store = SplitStore.open(workdir / "data" / "cache", "train")
    Trainer(params, store, train_paths(workdir)).fit(on_step=lambda step, loss: stamps.append(time.perf_counter()))
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    # The final step also validates and checkpoints before its on_step: drop it.
    return intervals[1:-1] if len(intervals) > 2 else intervals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per phase")
    parser.add_argument("--tiny", action="store_true", help="a tiny model instead of the params.yaml one")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, 2 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.tiny, args.steps = True, 2
    machine = print_header("train")

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        workdir = Path(tmp)
        cache = REPO_ROOT / "data" / "cache" / "train"
        # Loop: 1 warm-up interval + `steps` timed + the final (validating) step.
        params = bench_params(args.steps + 3, args.tiny)
        if (cache / "manifest.json").exists():
            (workdir / "data" / "cache").mkdir(parents=True)
            (workdir / "data" / "cache" / "train").symlink_to(cache.resolve())
            data = f"train cache {cache}"
        else:
            write_noise_preprocess(workdir / "preprocess", 3.0, params.preprocess)
            build_cache(workdir / "preprocess", workdir / "data" / "cache", progress=False)
            data = "noise cache (6 x 30 min)"
        before = model_only(params, args.steps)
        loop = full_loop(params, workdir, args.steps + 3)
        after = model_only(params, args.steps)

    batch = params.hardware.train_batch_size * params.hardware.grad_accumulation
    model_s = statistics.median(before + after)
    loop_s = statistics.median(loop)
    result = {
        "benchmark": "train",
        "quick": args.quick,
        "machine": machine,
        "loop_windows_per_s": round(batch / loop_s, 3),
        "model_only_windows_per_s": round(batch / model_s, 3),
        "ratio": round(model_s / loop_s, 3),
        "ratio_is": "model-only s/step / full-loop s/step (1.0: the loop adds nothing)",
        "targets": {"ratio": TARGET_RATIO},
        "meets_targets": {"ratio": model_s / loop_s >= TARGET_RATIO},
    }
    m = params.model
    print(f"model {m.n_layers} x d_model {m.d_model} (d_state {m.d_state}), batch {batch}, "
          f"{resolve_precision(params.hardware.precision, 'cpu')}, "
          f"{params.sampler.window_s:g} s windows, {torch.get_num_threads()} threads, data: {data}", file=sys.stderr)
    print(f"model-only s/step: before {[round(t, 2) for t in before]} after {[round(t, 2) for t in after]}",
          file=sys.stderr)
    print(f"loop s/step:       {[round(t, 2) for t in loop]}", file=sys.stderr)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
