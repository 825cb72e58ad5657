"""The dev/eval stages per hour of EEG against the model-only floor, measured in one run, timed the
same way.

    python benchmarks/bench_stage_inference.py [--hours 1] [--repeat 3] [--threads N] [--quick]

A dev split of `--hours` of EEG (clipped normal noise like normalised EEG, recordings of 240-600 s
like the synthetic corpus's, every other one with a seizure) is built into a cache with
`build_cache`; the detector is params.yaml's with random weights (its speed does not depend on the
weights) and the classical baseline is fitted on the split itself. Then, warmed up, interleaved,
best of `--repeat`, in this process, at the local profile's inference batch, precision (as resolved
on this CPU) and torch's threads:

- stage: `szflow.stages.dev.run` as the dev stage runs it (load the checkpoint, the network's and
  the baseline's probability tracks, the post-processing search, predictions and metrics written);
  the eval stage does the same less the search;
- floor: forward passes only of random windows of `sampler.window_s`, at each batch size of
  `FLOOR_BATCHES` and the profile's, the fastest per window scaled to
  3600 / (window_s - inference_overlap_s) windows per EEG hour: the network floor of
  `bench_model_cpu.py` and `bench_detect_24h.py`, at its best batch size (on a CPU a large batch is
  slower per window: its activations are mapped and page-faulted afresh on every pass).

`ratio` = stage seconds per EEG hour / floor seconds per EEG hour (target <= 1.5);
`ratio_vs_no_overlap_floor` uses the floor of windows that do not overlap at all (3600 / window_s
per hour), the least any 60 s-window model can do. One more pass times the stage's parts (network
tracks, baseline tracks, the search on both, the writes) so the report says where the rest goes.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import REPO_ROOT, emit, interleaved_times, print_header, summarise, write_noise_preprocess

from szflow import layout
from szflow.baseline import fit_baseline, save_baseline
from szflow.cache import SplitStore, build_split
from szflow.config import load_params
from szflow.evaluate import split_tracks, tune
from szflow.inference import autocast, resolve_precision
from szflow.model import Detector, save_checkpoint
from szflow.stages import dev
from szflow.stages.split_outputs import write_split_outputs

TARGET_RATIO = 1.5
SPLIT = "dev"
FLOOR_BATCHES = (1, 2, 4, 8, 32)
QUICK_MODEL = {"model.n_layers": 1, "model.d_model": 64, "model.encoder_channels": [4, 8, 8],
               "model.encoder_spatial_channels": 2}


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="hours of EEG in the dev split")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.1 h, a tiny model, 1 round (not a measurement)")
    return parser.parse_args(argv)


def recording_lengths(hours: float, seed: int = 0) -> list[float]:
    """Whole seconds between 240 and 600 (the synthetic corpus's range) adding up to about `hours`."""
    rng = np.random.default_rng(seed)
    lengths: list[float] = []
    while sum(lengths) < hours * 3600:
        lengths.append(float(rng.integers(240, 601)))
    return lengths


def build_project(root: Path, params, hours: float) -> float:
    """data/cache/dev, models/best.pt (random weights) and models/baseline.json under `root`;
    returns the hours of EEG in the split."""
    recording_ids = write_noise_preprocess(root / "preprocess", hours, params.preprocess, split=SPLIT,
                                           durations_s=recording_lengths(hours))
    build_split(root / "preprocess", root / layout.CACHE_DIR, SPLIT, progress=False)
    store = SplitStore.open(root / layout.CACHE_DIR, SPLIT)
    torch.manual_seed(0)
    save_checkpoint(root / layout.BEST_CHECKPOINT, model=Detector(params.model, mamba_impl="torch"),
                    model_config=params.model, step=0)
    save_baseline(root / layout.BASELINE_MODEL, fit_baseline(store, recording_ids, params.model.frame_rate_hz))
    return float(store.index["duration_s"].sum()) / 3600


def make_floors(params, precision: str) -> dict[int, object]:
    """{batch size: one forward pass of that many random windows, as the stage's model runs them}."""
    torch.manual_seed(1)
    model = Detector(params.model, mamba_impl="torch").eval()
    window = round(params.sampler.window_s * params.preprocess.sample_rate_hz)
    batches = sorted({*FLOOR_BATCHES, params.hardware.inference_batch_size})
    x = torch.randn(max(batches), params.model.in_channels, window)

    def forward(batch: int):
        def run() -> None:
            with torch.inference_mode(), autocast("cpu", precision):
                model(x[:batch])
        return run

    return {batch: forward(batch) for batch in batches}


def stage_parts(params, root: Path) -> dict[str, float]:
    """Seconds of each part of the dev stage, one pass (the parts `dev.run` calls, in its order)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    tracks, base_tracks, checkpoint = split_tracks(params, root / layout.CACHE_DIR, SPLIT,
                                                   root / layout.BEST_CHECKPOINT, root / layout.BASELINE_MODEL)
    seconds["tracks (network + baseline)"] = time.perf_counter() - started
    started = time.perf_counter()
    points, base_points = tune(params, tracks), tune(params, base_tracks)
    seconds["search (network + baseline)"] = time.perf_counter() - started
    started = time.perf_counter()
    write_split_outputs(root, SPLIT, tracks, base_tracks, points, base_points, checkpoint)
    seconds["predictions + metrics"] = time.perf_counter() - started
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = print_header("stage_inference")
    hours, repeat = (0.1, 1) if args.quick else (args.hours, args.repeat)
    params = load_params(REPO_ROOT, overrides=QUICK_MODEL if args.quick else None)
    precision = resolve_precision(params.hardware.precision, "cpu")
    window_s, overlap_s = params.sampler.window_s, params.sampler.inference_overlap_s
    batch = params.hardware.inference_batch_size
    with tempfile.TemporaryDirectory(prefix="szflow_bench_stage_") as tmp:
        root = Path(tmp)
        hours = build_project(root, params, hours)
        print(f"# dev split: {hours:.2f} h of EEG; precision {params.hardware.precision} -> {precision}; "
              f"windows {window_s:g} s overlapping {overlap_s:g} s, batch {batch}", flush=True)
        floors = make_floors(params, precision)
        methods = {"stage": lambda: dev.run(params, root), **{f"floor_batch_{b}": f for b, f in floors.items()}}
        for method in methods.values():
            method()  # warm-up: allocator, oneDNN primitives, page cache
        stats = summarise(interleaved_times(methods, repeat))
        parts = stage_parts(params, root)
    stage_s_per_hour = stats["stage"]["best_s"] / hours
    per_window = {b: stats[f"floor_batch_{b}"]["best_s"] / b for b in floors}
    best_batch = min(per_window, key=per_window.get)
    floor_s_per_hour = per_window[best_batch] * 3600 / (window_s - overlap_s)
    no_overlap_floor = per_window[best_batch] * 3600 / window_s
    ratio = stage_s_per_hour / floor_s_per_hour
    print(f"stage (dev.run): {stage_s_per_hour:.2f} s per EEG hour (best of {repeat}, median "
          f"{stats['stage']['median_s'] / hours:.2f})")
    for b, seconds in per_window.items():
        print(f"model only, batch {b}: {seconds * 3600 / (window_s - overlap_s):.2f} s per EEG hour")
    print(f"model-only floor: {floor_s_per_hour:.2f} s per EEG hour (batch {best_batch}, "
          f"{3600 / (window_s - overlap_s):g} windows/h; {no_overlap_floor:.2f} s without any overlap)")
    for name, seconds in parts.items():
        print(f"  part {name}: {seconds / hours:.3f} s per EEG hour")
    print(f"ratio stage / floor: {ratio:.2f} (target <= {TARGET_RATIO})")
    emit({
        "benchmark": "stage_inference",
        "quick": args.quick,
        "machine": machine,
        "precision": precision,
        "eeg_hours": round(hours, 3),
        "inference_batch": batch,
        "window_s": window_s,
        "inference_overlap_s": overlap_s,
        "repeat": repeat,
        "times": stats,
        "stage_s_per_eeg_hour": round(stage_s_per_hour, 3),
        "floor_s_per_eeg_hour": round(floor_s_per_hour, 3),
        "floor_batch": best_batch,
        "model_only_s_per_eeg_hour_by_batch": {str(b): round(v * 3600 / (window_s - overlap_s), 3)
                                               for b, v in per_window.items()},
        "parts_s_per_eeg_hour": {name: round(seconds / hours, 4) for name, seconds in parts.items()},
        "ratio": round(ratio, 3),
        "ratio_is": "dev stage s per EEG hour / model-only forward s per EEG hour (same windows per hour and precision, best batch)",
        "ratio_vs_no_overlap_floor": round(stage_s_per_hour / no_overlap_floor, 3),
        "targets": {"ratio": TARGET_RATIO},
        "meets_targets": {"ratio": ratio <= TARGET_RATIO},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
