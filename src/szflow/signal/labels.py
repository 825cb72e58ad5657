"""Seizure labels on the sample grid of the preprocessed signal."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# Interval edges are decimal seconds (4 decimals in .csv_bi); `t * rate` can land a hair above an
# integer (e.g. 2.5 * 256.0000001), which `ceil` would push to the next sample.
_EDGE_TOLERANCE = 1e-6


def interval_samples(
    intervals: Iterable[tuple[float, float]] | Iterable[list[float]], n_samples: int, sample_rate_hz: float
) -> list[tuple[int, int]]:
    """Seizure intervals in seconds -> [first, stop) sample ranges on a grid of `sample_rate_hz`.

    Sample k (at time k / rate) is seizure when start <= k / rate < stop, so the range is
    [ceil(start * rate), ceil(stop * rate)), clipped to [0, n_samples). Empty ranges are dropped.
    Samplers use this function too, so window classes agree with the mask to the sample.
    """
    spans: list[tuple[int, int]] = []
    for start, stop in intervals:
        first = int(np.ceil(float(start) * sample_rate_hz - _EDGE_TOLERANCE))
        end = int(np.ceil(float(stop) * sample_rate_hz - _EDGE_TOLERANCE))
        first, end = max(first, 0), min(end, n_samples)
        if end > first:
            spans.append((first, end))
    return spans


def seizure_mask(
    intervals: Iterable[tuple[float, float]] | Iterable[list[float]], n_samples: int, sample_rate_hz: float
) -> np.ndarray:
    """uint8 mask of length `n_samples`: 1 where the sample lies inside a seizure interval."""
    mask = np.zeros(n_samples, dtype=np.uint8)
    for first, end in interval_samples(intervals, n_samples, sample_rate_hz):
        mask[first:end] = 1
    return mask


def frame_labels(mask: np.ndarray, samples_per_frame: int, reduce: str = "any") -> np.ndarray:
    """Reduce a per-sample mask (..., n) to frames of `samples_per_frame` samples (..., n // spf).

    `any`: a frame is seizure if any of its samples is; `majority`: if more than half are.
    The last axis must be a whole number of frames.
    """
    n = mask.shape[-1]
    if n % samples_per_frame:
        raise ValueError(f"{n} samples are not a whole number of {samples_per_frame}-sample frames")
    frames = mask.reshape(*mask.shape[:-1], n // samples_per_frame, samples_per_frame)
    if reduce == "any":
        return frames.max(axis=-1)
    if reduce == "majority":
        return (2 * frames.sum(axis=-1, dtype=np.int32) > samples_per_frame).astype(mask.dtype)
    raise ValueError(f"unknown frame reduction {reduce!r} (use any or majority)")
