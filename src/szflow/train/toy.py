"""A small, learnable cache split written directly in the store format, for tests and benchmarks.

Background is white noise; a seizure adds a 5 Hz rhythm of a few times the background amplitude
on every channel, so a tiny detector separates the classes within a few dozen steps. Written with
the same files `szflow.cache.build` produces (signals.npy, labels.npy, index.parquet, manifest.json),
so `SplitStore.open` reads it like a real cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from szflow.cache.layout import (
    FORMAT_VERSION,
    INDEX_NAME,
    LABELS_NAME,
    LAYOUT,
    MANIFEST_NAME,
    N_CHANNELS,
    SIGNALS_NAME,
)
from szflow.io_utils import atomic_path, atomic_write_json

SAMPLE_RATE_HZ = 256


def toy_recordings(n_patients: int = 6, recordings_per_patient: int = 2, duration_s: float = 40.0,
                   seizure_s: float = 10.0, seed: int = 0) -> list[dict]:
    """Recording specs: every other patient has a seizure in each of their recordings."""
    rng = np.random.default_rng(seed)
    specs = []
    for p in range(n_patients):
        for r in range(recordings_per_patient):
            intervals: list[list[float]] = []
            if p % 2 == 0:
                start = float(np.round(rng.uniform(2.0, duration_s - seizure_s - 2.0), 2))
                intervals = [[start, start + seizure_s]]
            specs.append({"recording_id": f"p{p:03d}_s001_t{r:03d}", "patient": f"p{p:03d}",
                          "duration_s": float(duration_s), "seizure_intervals": intervals})
    return specs


def toy_signal(n_samples: int, intervals: Sequence[Sequence[float]], rng: np.random.Generator,
               seizure_amplitude: float = 3.0) -> np.ndarray:
    x = rng.standard_normal((N_CHANNELS, n_samples)).astype(np.float32)
    t = np.arange(n_samples) / SAMPLE_RATE_HZ
    for start, stop in intervals:
        inside = (t >= start) & (t < stop)
        x[:, inside] += seizure_amplitude * np.sin(2 * np.pi * 5.0 * t[inside])[None, :]
    return x


def write_toy_store(cache_dir: str | Path, split: str = "train", recordings: list[dict] | None = None,
                    seed: int = 0, seizure_amplitude: float = 3.0) -> Path:
    """Write `<cache_dir>/<split>` from `recordings` (default `toy_recordings()`); returns the folder."""
    recordings = toy_recordings(seed=seed) if recordings is None else recordings
    split_dir = Path(cache_dir) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    lengths = [round(r["duration_s"] * SAMPLE_RATE_HZ) for r in recordings]
    offsets = np.concatenate(([0], np.cumsum(lengths)))[:-1].astype(np.int64)
    total = int(sum(lengths))
    signals = np.zeros((N_CHANNELS, total), np.float16)
    labels = np.zeros(total, np.uint8)
    for rec, offset, length in zip(recordings, offsets, lengths, strict=True):
        signals[:, offset:offset + length] = toy_signal(length, rec["seizure_intervals"], rng, seizure_amplitude)
        t = np.arange(length) / SAMPLE_RATE_HZ
        for start, stop in rec["seizure_intervals"]:
            labels[offset:offset + length][(t >= start) & (t < stop)] = 1
    with atomic_path(split_dir / SIGNALS_NAME) as tmp, open(tmp, "wb") as handle:
        np.lib.format.write_array(handle, signals)
    with atomic_path(split_dir / LABELS_NAME) as tmp, open(tmp, "wb") as handle:
        np.lib.format.write_array(handle, labels)
    index = pd.DataFrame({
        "recording_id": [r["recording_id"] for r in recordings],
        "split": split,
        "patient": [r["patient"] for r in recordings],
        "session": "s001",
        "montage": "01_tcp_ar",
        "offset": offsets,
        "length": np.asarray(lengths, np.int64),
        "duration_s": [length / SAMPLE_RATE_HZ for length in lengths],
        "sample_rate_hz": float(SAMPLE_RATE_HZ),
        "n_seizures": [len(r["seizure_intervals"]) for r in recordings],
        "seizure_s": [float(sum(b - a for a, b in r["seizure_intervals"])) for r in recordings],
        "seizure_intervals": [[[float(a), float(b)] for a, b in r["seizure_intervals"]] for r in recordings],
        "seizure_types": [["fnsz"] * len(r["seizure_intervals"]) for r in recordings],
    })
    with atomic_path(split_dir / INDEX_NAME) as tmp:
        index.to_parquet(tmp, index=False)
    atomic_write_json(split_dir / MANIFEST_NAME, {
        "format_version": FORMAT_VERSION, "split": split, "layout": LAYOUT,
        "preprocess_params_hash": "toy", "sample_rate_hz": float(SAMPLE_RATE_HZ), "n_channels": N_CHANNELS,
        "n_recordings": len(recordings), "total_samples": total, "hours": total / SAMPLE_RATE_HZ / 3600,
    })
    return split_dir
