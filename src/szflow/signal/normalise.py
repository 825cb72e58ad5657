"""Per-recording, per-channel normalisation and clipping.

`median_iqr` (the default) centres each channel on its median and divides by its inter-quartile
range scaled to a standard deviation (IQR / 1.349, which equals sigma for Gaussian data). Medians
and quartiles ignore the few huge artifacts (electrode pops, movement) that would inflate a mean
and a standard deviation and shrink the rest of the recording; the 1.349 factor keeps the output
on the same scale as `mean_std`, so `clip` (default 10) means "10 standard deviations" for both.
Values beyond +-clip are clipped: the remaining artifacts cannot dominate a batch, and float16
storage keeps full relative precision over that range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

IQR_TO_SIGMA = 1.3489795  # IQR of a standard normal distribution
# Statistics come from at most STATS_BLOCKS blocks of STATS_BLOCK_SAMPLES consecutive samples
# (1 s at 256 Hz), spread evenly over the recording: 16,384 values per channel whatever the
# length (standard error of the median ~1% of sigma for independent samples, far below what
# matters for a robust scale), so the quantiles cost ~4 ms per recording instead of growing with
# it -- TUSZ recordings average 12 minutes, so per-recording costs matter (twice as many blocks
# made this step a third of the preprocessing time of a 4-minute recording). Whole blocks rather
# than a fixed stride: a strided subsample aliases any rhythm at a multiple of (rate / stride) onto
# one phase and biases the quartiles. Recordings up to 64 s use every sample.
STATS_BLOCK_SAMPLES = 256
STATS_BLOCKS = 64
# A channel whose spread is below this (in the input unit, microvolts) is treated as flat: it is
# centred but not scaled, instead of being blown up to noise or divided by zero.
FLAT_SCALE = 1e-6

Method = Literal["median_iqr", "mean_std"]


@dataclass(frozen=True)
class NormalisationStats:
    centre: np.ndarray  # (channels,) float32
    scale: np.ndarray  # (channels,) float32, 1.0 for flat channels


def statistics_sample(block: np.ndarray) -> np.ndarray:
    """A copy of the samples the statistics are computed from: all of `block` when short, else
    (channels, STATS_BLOCKS * STATS_BLOCK_SAMPLES) of evenly spread blocks."""
    n = block.shape[1]
    if n <= STATS_BLOCKS * STATS_BLOCK_SAMPLES:
        return block.copy()
    starts = np.linspace(0, n - STATS_BLOCK_SAMPLES, STATS_BLOCKS).astype(np.int64)
    columns = (starts[:, None] + np.arange(STATS_BLOCK_SAMPLES)).reshape(-1)
    return block[:, columns]


def quartiles(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row 25th, 50th and 75th percentiles ('lower' order statistics), reordering `sample`.

    Three single-pivot partitions (median first, then each quartile inside its half) instead of
    `np.quantile`'s one multi-pivot partition: numpy runs single-pivot partitions with SIMD
    (x86-simd-sort), which makes this twice as fast.
    """
    n = sample.shape[1]
    k50, k25, k75 = (n - 1) // 2, (n - 1) // 4, 3 * (n - 1) // 4
    if not k25 < k50 < k75:  # a handful of samples: no halves to partition
        q25, q50, q75 = np.quantile(sample, [0.25, 0.5, 0.75], axis=1, method="lower")
        return q25, q50, q75
    sample.partition(k50, axis=1)
    q50 = sample[:, k50].copy()
    # Each half excludes the pivot, so partitioning one half never moves elements of the other.
    sample[:, :k50].partition(k25, axis=1)
    sample[:, k50 + 1:].partition(k75 - k50 - 1, axis=1)
    return sample[:, k25].copy(), q50, sample[:, k75].copy()


def channel_stats(block: np.ndarray, method: Method = "median_iqr") -> NormalisationStats:
    """Centre and scale of every channel of a (channels, samples) block."""
    sample = statistics_sample(block)
    if method == "median_iqr":
        q25, q50, q75 = quartiles(sample)
        centre, scale = q50, (q75 - q25) / IQR_TO_SIGMA
    elif method == "mean_std":
        centre = sample.mean(axis=1, dtype=np.float64)
        scale = sample.std(axis=1, dtype=np.float64)
    else:
        raise ValueError(f"unknown normalisation {method!r} (use median_iqr or mean_std)")
    scale = np.where(scale > FLAT_SCALE, scale, 1.0)
    return NormalisationStats(centre=centre.astype(np.float32), scale=scale.astype(np.float32))


def statistics_columns(n: int) -> np.ndarray:
    """Columns of a (channels, n) block that `statistics_sample` draws the statistics from.

    Asked of `statistics_sample` itself (applied to a row of column numbers), so a reader that sees
    a recording in pieces picks exactly these samples. The row is int32: 88 MB for 24 h at 256 Hz.
    """
    return np.asarray(statistics_sample(np.arange(n, dtype=np.int32)[None, :])[0], dtype=np.int64)


def apply_stats(block: np.ndarray, stats: NormalisationStats, clip: float) -> np.ndarray:
    """Centre and scale a (channels, samples) float32 block in place with `stats`, clip it to
    [-clip, clip]; returns `block`."""
    block -= stats.centre[:, None]
    block *= (1.0 / stats.scale)[:, None]
    np.clip(block, -clip, clip, out=block)
    return block


def normalise(block: np.ndarray, method: Method = "median_iqr", clip: float = 10.0) -> NormalisationStats:
    """Normalise a (channels, samples) float32 block in place and clip it to [-clip, clip]."""
    stats = channel_stats(block, method)
    apply_stats(block, stats, clip)
    return stats
