"""Training-window reads from the cache store against the two formats it replaces, one process, one
thread, in one run, on the same random windows.

A preprocess folder of random recordings (`--hours` of EEG, 30-minute recordings, float16 like the
preprocess stage writes) is built into a store with `build_cache`; then `--windows` random windows of
`sampler.window_s` (x float32 (19, n), per-sample labels, valid mask) are read

- from the store: `SplitStore.window` (one contiguous memory map per split);
- from per-recording memory-mapped `.npy` (the strongest simple baseline): the preprocess stage's
  own float16 `<recording>.npy` plus a labels `.npy` per recording, each opened once with
  `np.load(mmap_mode="r")`; a window is a slice converted to float32 with torch (the same fast
  conversion the store uses), so the ratio measures the layout, not the cast;
- from one compressed `.npz` per window (`np.savez_compressed(x, y)`, read back with `np.load`), the
  first `--npz-windows` of the same windows.

All read from a warm page cache (files just written): the comparison is of the formats, not of the
disk. The baseline windows are checked equal to the store's. Also: bytes on disk per hour of EEG,
and the build rate. Targets (set against npz): >= 2,000 windows/s, >= 20x npz, <= 40 MB per EEG
hour; none was set against the memory-mapped `.npy`. Ends with one JSON line.

    python benchmarks/bench_cache.py [--hours 4] [--windows 3000] [--npz-windows 200] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import REPO_ROOT, emit, print_header, write_noise_preprocess

from szflow.cache import SplitStore, build_cache
from szflow.config import load_params
from szflow.signal.jobs import recording_paths

TARGET_WINDOWS_PER_S = 2000.0
TARGET_VS_NPZ = 20.0
TARGET_BYTES_PER_HOUR = 40e6


def random_windows(store: SplitStore, count: int, window: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(store), count)
    return [(int(r), int(rng.integers(0, store.length(int(r)) - window + 1))) for r in rows]


def read_store(store: SplitStore, windows: list[tuple[int, int]], window: int) -> float:
    start = time.perf_counter()
    for row, first in windows:
        store.window(row, first, window)  # x, labels and valid mask
    return time.perf_counter() - start


class MappedRecordings:
    """Per-recording float16 signal and uint8 label `.npy` files, each memory-mapped once."""

    def __init__(self, signal_paths: list[Path], label_paths: list[Path]):
        self.signals = [np.load(p, mmap_mode="r") for p in signal_paths]
        self.labels = [np.load(p, mmap_mode="r") for p in label_paths]

    def window(self, row: int, first: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x16 = np.ascontiguousarray(self.signals[row][:, first: first + n])
        x = torch.from_numpy(x16).to(torch.float32).numpy()
        return x, np.array(self.labels[row][first: first + n]), np.ones(n, dtype=bool)


def read_mapped(recordings: MappedRecordings, windows: list[tuple[int, int]], window: int) -> float:
    start = time.perf_counter()
    for row, first in windows:
        recordings.window(row, first, window)
    return time.perf_counter() - start


def read_npz(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with np.load(path) as data:
            data["x"], data["y"]  # decompresses both arrays
    return time.perf_counter() - start


def write_baselines(tmp: Path, store: SplitStore, recording_ids: list[str], windows: list[tuple[int, int]],
                    window: int, npz_count: int) -> tuple[MappedRecordings, list[Path]]:
    """The memory-mapped `.npy` recordings (the preprocess folder's signals + label files) and one
    `.npz` per window for the first `npz_count` windows."""
    label_paths = []
    for rid in recording_ids:
        path = tmp / "labels" / f"{rid}.npy"
        path.parent.mkdir(exist_ok=True)
        np.save(path, np.asarray(store.labels(rid)))
        label_paths.append(path)
    signal_paths = [recording_paths(tmp / "pre", "train", rid)[0] for rid in recording_ids]
    npz_dir = tmp / "npz"
    npz_dir.mkdir()
    npz_paths = []
    for i, (row, first) in enumerate(windows[:npz_count]):
        x, y, _, _ = store.window(row, first, window)
        path = npz_dir / f"window_{i:05d}.npz"
        np.savez_compressed(path, x=x, y=y)
        npz_paths.append(path)
    return MappedRecordings(signal_paths, label_paths), npz_paths


def check_same_windows(store: SplitStore, mapped: MappedRecordings, windows, window: int) -> None:
    for row, first in windows[:20]:
        ours, theirs = store.window(row, first, window), mapped.window(row, first, window)
        if not all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)):
            raise SystemExit(f"memory-mapped .npy window ({row}, {first}) differs from the store's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--windows", type=int, default=3000)
    parser.add_argument("--npz-windows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 h, 300 windows, 50 npz, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.windows, args.npz_windows, args.repeat = 1.0, 300, 50, 2
    torch.set_num_threads(1)  # one process, one thread
    machine = print_header("cache")
    params = load_params(REPO_ROOT)
    cfg = params.preprocess
    window = int(params.sampler.window_s * cfg.sample_rate_hz)

    with tempfile.TemporaryDirectory(dir=os.environ.get("SZFLOW_BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        recording_ids = write_noise_preprocess(tmp / "pre", args.hours, cfg)
        started = time.perf_counter()
        build_cache(tmp / "pre", tmp / "cache", progress=False)
        build_s = time.perf_counter() - started
        store = SplitStore.open(tmp / "cache", "train")
        eeg_hours = store.total_samples / cfg.sample_rate_hz / 3600
        bytes_per_hour = store.manifest["bytes"] / eeg_hours

        windows = random_windows(store, args.windows, window, seed=1)
        mapped, npz_paths = write_baselines(tmp, store, recording_ids, windows, window, args.npz_windows)
        check_same_windows(store, mapped, windows, window)
        npz_bytes_per_window = sum(p.stat().st_size for p in npz_paths) / len(npz_paths)
        read_store(store, windows[:50], window)  # warm-up (page cache, torch's first cast)
        read_mapped(mapped, windows[:50], window)
        read_npz(npz_paths[:10])

        # Rounds alternate the readers so background load hits all alike; the best round counts.
        store_s = mapped_s = npz_s = float("inf")
        for _ in range(args.repeat):
            store_s = min(store_s, read_store(store, windows, window))
            mapped_s = min(mapped_s, read_mapped(mapped, windows, window))
            npz_s = min(npz_s, read_npz(npz_paths))

    store_rate, mapped_rate, npz_rate = len(windows) / store_s, len(windows) / mapped_s, len(npz_paths) / npz_s
    print(f"{'reader':<28}{'windows/s':>12}{'store / it':>12}")
    for name, rate in (("store", store_rate), ("memory-mapped .npy", mapped_rate), ("npz per window", npz_rate)):
        print(f"{name:<28}{rate:>12.1f}{store_rate / rate:>12.2f}")
    print(f"store: {bytes_per_hour / 1e6:.1f} MB per EEG hour; built at {eeg_hours / build_s:.2f} EEG hours/s")
    meets = {"windows_per_s": store_rate >= TARGET_WINDOWS_PER_S, "ratio_vs_npz": store_rate / npz_rate >= TARGET_VS_NPZ,
             "bytes_per_eeg_hour": bytes_per_hour <= TARGET_BYTES_PER_HOUR}
    emit({
        "benchmark": "cache",
        "quick": args.quick,
        "machine": machine,
        "windows_per_s": round(store_rate, 1),
        "mmap_npy_windows_per_s": round(mapped_rate, 1),
        "npz_windows_per_s": round(npz_rate, 1),
        "ratio": round(store_rate / mapped_rate, 2),
        "ratio_is": "store windows/s / per-recording memory-mapped .npy windows/s",
        "ratio_vs_npz": round(store_rate / npz_rate, 2),
        "bytes_per_eeg_hour": round(bytes_per_hour),
        "mb_per_eeg_hour": round(bytes_per_hour / 1e6, 2),
        # One npz per non-overlapping window; overlapping windows multiply this.
        "npz_mb_per_eeg_hour": round(npz_bytes_per_window * 3600 / params.sampler.window_s / 1e6, 2),
        "build_eeg_hours_per_s": round(eeg_hours / build_s, 2),
        "eeg_hours": round(eeg_hours, 2),
        "window_samples": window,
        "windows": len(windows),
        "npz_windows": len(npz_paths),
        "targets": {"windows_per_s": TARGET_WINDOWS_PER_S, "ratio_vs_npz": TARGET_VS_NPZ,
                    "bytes_per_eeg_hour": TARGET_BYTES_PER_HOUR},
        "meets_targets": meets,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
