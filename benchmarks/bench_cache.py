"""Training-window reads from the cache store versus one compressed .npz per window (the earlier
project's format), one process, one thread, in one run on the same windows.

A store of random preprocessed recordings (`--hours` of EEG, 30-minute recordings) is built with
`build_cache`; then `--windows` random 60 s windows (x float32 (19, 15360), labels, valid mask) are
read through `SplitStore.window`, and the same windows are written as `np.savez_compressed(x, y)`
files and read back with `np.load`. Both read from a warm page cache (files just written), so the
comparison is of the formats, not of the disk. Also: bytes on disk per hour of EEG, and the build
rate. Targets: >= 2,000 windows/s, >= 20x the npz baseline, <= 40 MB per hour. Ends with one JSON
line.

    python benchmarks/bench_cache.py [--hours 4] [--windows 3000] [--npz-windows 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from szflow.cache import SplitStore, build_cache
from szflow.config import PreprocessConfig
from szflow.signal.pipeline import REPORT_COLUMNS, write_recording, write_run_summary

TARGET_WINDOWS_PER_S = 2000.0
TARGET_VS_NPZ = 20.0
TARGET_BYTES_PER_HOUR = 40e6
RATE = 256
WINDOW = 60 * RATE


def write_preprocessed(out: Path, hours: float, seed: int = 0) -> None:
    """30-minute recordings of clipped normal noise (like normalised EEG) with a few seizures."""
    rng = np.random.default_rng(seed)
    n_recordings = max(1, round(hours * 2))
    rows = []
    for i in range(n_recordings):
        rid = f"bench_{i:03d}"
        n = 30 * 60 * RATE
        block = np.clip(rng.normal(0, 1, (19, n)), -10, 10).astype(np.float16)
        seizures = [[600.0, 700.0]] if i % 2 == 0 else []
        meta = {"recording_id": rid, "split": "train", "patient": f"p{i // 2}", "session": "s001",
                "montage": "01_tcp_ar", "duration_s": n / RATE, "n_samples": n, "seizure_intervals": seizures,
                "seizure_types": ["fnsz"] if seizures else [], "params_hash": "bench"}
        write_recording(out, meta, block)
        rows.append({**dict.fromkeys(REPORT_COLUMNS, ""), "recording_id": rid, "split": "train", "status": "ok",
                     "resumed": False, "n_samples": n})
    write_run_summary(out, pd.DataFrame(rows, columns=REPORT_COLUMNS), PreprocessConfig(), "bench")


def random_windows(store: SplitStore, count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(store), count)
    return [(int(r), int(rng.integers(0, store.length(int(r)) - WINDOW + 1))) for r in rows]


def read_store(store: SplitStore, windows: list[tuple[int, int]]) -> float:
    start = time.perf_counter()
    for row, first in windows:
        store.window(row, first, WINDOW)  # x, labels and valid mask
    return time.perf_counter() - start


def read_npz(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with np.load(path) as data:
            data["x"], data["y"]  # decompresses both arrays
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--windows", type=int, default=3000)
    parser.add_argument("--npz-windows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one process, one thread

    with tempfile.TemporaryDirectory(dir=os.environ.get("SZFLOW_BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        write_preprocessed(tmp / "pre", args.hours)
        started = time.perf_counter()
        build_cache(tmp / "pre", tmp / "cache", progress=False)
        build_s = time.perf_counter() - started
        store = SplitStore.open(tmp / "cache", "train")
        eeg_hours = store.total_samples / RATE / 3600
        bytes_per_hour = store.manifest["bytes"] / eeg_hours

        windows = random_windows(store, args.windows, seed=1)
        npz_windows = windows[: args.npz_windows]
        npz_dir = tmp / "npz"
        npz_dir.mkdir()
        npz_paths = []
        for i, (row, first) in enumerate(npz_windows):
            x, y, _ = store.window(row, first, WINDOW)
            path = npz_dir / f"window_{i:05d}.npz"
            np.savez_compressed(path, x=x, y=y)
            npz_paths.append(path)
        npz_bytes_per_window = sum(p.stat().st_size for p in npz_paths) / len(npz_paths)

        # Rounds alternate the two readers so background load hits both alike; best round counts.
        store_s, npz_s = float("inf"), float("inf")
        for _ in range(args.repeat):
            store_s = min(store_s, read_store(store, windows))
            npz_s = min(npz_s, read_npz(npz_paths))

    store_rate = len(windows) / store_s
    npz_rate = len(npz_paths) / npz_s
    result = {
        "benchmark": "cache",
        "windows_per_s": round(store_rate, 1),
        "npz_windows_per_s": round(npz_rate, 1),
        "ratio": round(store_rate / npz_rate, 2),
        "bytes_per_eeg_hour": round(bytes_per_hour),
        "mb_per_eeg_hour": round(bytes_per_hour / 1e6, 2),
        # One npz per non-overlapping 60 s window; overlapping windows multiply this.
        "npz_mb_per_eeg_hour": round(npz_bytes_per_window * 60 / 1e6, 2),
        "build_eeg_hours_per_s": round(eeg_hours / build_s, 2),
        "eeg_hours": round(eeg_hours, 2),
        "windows": len(windows),
        "npz_windows": len(npz_paths),
        "targets": {"windows_per_s": TARGET_WINDOWS_PER_S, "ratio": TARGET_VS_NPZ,
                    "bytes_per_eeg_hour": TARGET_BYTES_PER_HOUR},
        "meets_targets": bool(store_rate >= TARGET_WINDOWS_PER_S and store_rate / npz_rate >= TARGET_VS_NPZ
                              and bytes_per_hour <= TARGET_BYTES_PER_HOUR),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
