"""Resampling of every electrode from its own rate to the common rate with a polyphase filter."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

# Bounds the polyphase filter length (about 20 * max(up, down) taps); every EEG rate in TUSZ gives a
# much smaller exact ratio (250 -> 256 is 128/125).
MAX_RATIO_DENOMINATOR = 1000


def rational_ratio(from_hz: float, to_hz: float) -> tuple[int, int]:
    """(up, down) with to_hz / from_hz ~= up / down, in lowest terms; e.g. 250 -> 256 gives (128, 125).

    EDF headers store the record duration as text, so a rate can come out as 249.99999; the ratio
    is rounded to the nearest fraction with a small denominator so such rates resample like 250.
    """
    if from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"sample rates must be positive (got {from_hz} -> {to_hz})")
    ratio = (Fraction(to_hz) / Fraction(from_hz)).limit_denominator(MAX_RATIO_DENOMINATOR)
    return ratio.numerator, ratio.denominator


def resampled_length(n_samples: int, up: int, down: int) -> int:
    """Length `resample_poly` returns: ceil(n * up / down)."""
    return -(-n_samples * up // down)


def resample_block(block: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """Resample a (channels, samples) block along its last axis; float32 in, float32 out.

    Output sample k is at time k / to_hz, like input sample k at k / from_hz (the polyphase filter
    is linear phase and `resample_poly` removes its delay), so labels stay aligned. The block is
    returned unchanged (not copied) when the rates already agree.
    """
    up, down = rational_ratio(from_hz, to_hz)
    if up == down:
        return block
    # 'edge' padding repeats the first/last sample instead of padding with zeros, so a DC offset
    # (common in raw EDF channels) does not produce a step at the ends for the band-pass to ring on.
    return resample_poly(block, up, down, axis=-1, padtype="edge")


def resample_channels(signals: Sequence[np.ndarray], rates: Sequence[float], to_hz: float) -> np.ndarray:
    """Resample each channel from its own rate to `to_hz`; return one (channels, n) float32 block.

    Channels that share a rate (all of them, in almost every EDF) go through `resample_poly` as one
    block along axis -1. Channels of different rates can end up one sample apart (each output has
    ceil(n_in * up / down) samples); the block is cut to the shortest.
    """
    if len(signals) != len(rates):
        raise ValueError(f"{len(signals)} signals but {len(rates)} sample rates")
    if not signals:
        raise ValueError("no signals to resample")
    groups: dict[tuple[int, int], list[int]] = {}
    for index, rate in enumerate(rates):
        groups.setdefault(rational_ratio(float(rate), float(to_hz)), []).append(index)

    if len(groups) == 1:
        members = next(iter(groups.values()))
        if len({len(signals[i]) for i in members}) != 1:
            raise ValueError("channels with the same rate have different lengths")
        block = np.stack([np.asarray(s, dtype=np.float32) for s in signals])
        return resample_block(block, float(rates[0]), float(to_hz))

    outputs: dict[int, np.ndarray] = {}
    for members in groups.values():
        lengths = {len(signals[i]) for i in members}
        if len(lengths) != 1:
            raise ValueError("channels with the same rate have different lengths")
        group = np.stack([np.asarray(signals[i], dtype=np.float32) for i in members])
        group = resample_block(group, float(rates[members[0]]), float(to_hz))
        for row, index in enumerate(members):
            outputs[index] = group[row]
    n_out = min(len(v) for v in outputs.values())
    block = np.empty((len(signals), n_out), dtype=np.float32)
    for index, values in outputs.items():
        block[index] = values[:n_out]
    return block

