"""Per-frame seizure probabilities -> seizure events (seconds), and events -> annotation files.

Steps, in this order, all sized in SECONDS (never in samples or frames, DESIGN.md §10):
  1. centred moving average over `smoothing_s` (zero phase, so events are not shifted in time);
  2. threshold: frames with p >= threshold are seizure; with `hysteresis_low`, an event starts at
     a frame >= threshold and continues while p >= hysteresis_low;
  3. frame runs -> seconds: frames [a, b) become (a / rate, b / rate), clipped to [0, duration];
  4. events whose gap is < `merge_gap_s` are merged;
  5. events shorter than `min_duration_s` are dropped.

The threshold sweep in `szflow.scoring.sweep` builds events for many thresholds at once; it uses
the same `smooth_probabilities` and `runs_to_events` as `probs_to_events`, so a sweep row equals
scoring `probs_to_events` at that threshold, to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from szflow.data.annotations import Annotation, Event
from szflow.errors import ConfigError, SzflowError

SETTINGS_KEYS: tuple[str, ...] = (
    "smoothing_s", "threshold", "hysteresis_low", "min_duration_s", "merge_gap_s",
)


@dataclass(frozen=True)
class PostprocessSettings:
    """The five post-processing settings (the names of `SETTINGS_KEYS`)."""

    smoothing_s: float = 0.0
    threshold: float = 0.5
    hysteresis_low: float | None = None
    min_duration_s: float = 0.0
    merge_gap_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("smoothing_s", "min_duration_s", "merge_gap_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"postprocess {name} must be a finite number >= 0, got {value!r}")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"postprocess threshold must be finite, got {self.threshold!r}")
        if self.hysteresis_low is not None and not math.isfinite(self.hysteresis_low):
            raise ConfigError(
                f"postprocess hysteresis_low must be finite or null, got {self.hysteresis_low!r}")

    @classmethod
    def from_any(cls, source: Any) -> PostprocessSettings:
        """Settings from a `PostprocessSettings`, a `PostprocessConfig` (or any object with the five
        attributes), or a mapping such as an operating point (extra keys like `sensitivity` ignored)."""
        if isinstance(source, cls):
            return source
        if source is None:
            return cls()
        if isinstance(source, Mapping):
            values = {key: source[key] for key in SETTINGS_KEYS if key in source}
        else:
            values = {key: getattr(source, key) for key in SETTINGS_KEYS if hasattr(source, key)}
        for key, value in values.items():
            if value is not None:
                values[key] = float(value)
        return cls(**values)

    def as_dict(self) -> dict[str, float | None]:
        return {key: getattr(self, key) for key in SETTINGS_KEYS}


def postprocess_settings(cfg: Any) -> dict[str, float | None]:
    """The keyword arguments of `probs_to_events` from a `PostprocessConfig`, dict or settings object."""
    return PostprocessSettings.from_any(cfg).as_dict()


# ---------------------------------------------------------------------------------------------
# Smoothing and thresholding


def smoothing_window_frames(smoothing_s: float, frame_rate_hz: float) -> int:
    """Moving-average length in frames: `smoothing_s` rounded to the nearest odd frame count.

    Odd, because only a symmetric window is zero phase (an even one shifts events by half a frame).
    """
    frames = round(smoothing_s * frame_rate_hz)
    if frames <= 1:
        return 1
    return frames if frames % 2 == 1 else frames + 1


def smooth_probabilities(probabilities: np.ndarray, frame_rate_hz: float, smoothing_s: float) -> np.ndarray:
    """Centred moving average (float64). Near the ends it averages the frames that exist, rather than
    padding with zeros, which would pull probabilities down and miss seizures at a file's edges."""
    x = np.asarray(probabilities, dtype=np.float64)
    width = smoothing_window_frames(smoothing_s, frame_rate_hz)
    if width == 1 or x.size == 0:
        return x
    half = width // 2
    n = x.size
    # A cumulative sum gives every window sum in O(n), whatever the window length.
    cumulative = np.concatenate(([0.0], np.cumsum(x)))
    index = np.arange(n)
    lo = np.maximum(index - half, 0)
    hi = np.minimum(index + half + 1, n)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def threshold_runs(x: np.ndarray, threshold: float,
                   hysteresis_low: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame runs [starts, stops) of seizure frames in one (smoothed) track.

    Without hysteresis a run is a maximal stretch of frames >= threshold. With it, a run starts at
    the first frame >= threshold and lasts while frames stay >= hysteresis_low.
    """
    if hysteresis_low is None or hysteresis_low >= threshold:
        # hysteresis_low == threshold is plain thresholding; > threshold is refused by the caller.
        return _mask_runs(x >= threshold)
    low_starts, low_stops = _mask_runs(x >= hysteresis_low)
    high = np.flatnonzero(x >= threshold)
    first = np.searchsorted(high, low_starts)
    ok = first < high.size
    ok[ok] &= high[first[ok]] < low_stops[ok]
    return high[first[ok]], low_stops[ok]


def _mask_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    padded = np.concatenate(([False], mask, [False])).view(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return edges[0::2], edges[1::2]


# ---------------------------------------------------------------------------------------------
# Runs -> events (vectorised over many recordings at once)


def runs_to_events(
    recording: np.ndarray,
    run_starts: np.ndarray,
    run_stops: np.ndarray,
    frame_rate_hz: np.ndarray,
    duration_s: np.ndarray,
    merge_gap_s: float,
    min_duration_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame runs of many recordings -> (recording, start_s, stop_s) events.

    `recording` indexes `frame_rate_hz` and `duration_s`; runs must be sorted by (recording, start)
    and not overlap. Seconds are `frame / rate` in float64, identical for one recording or many.
    """
    recording = np.asarray(recording, dtype=np.int64)
    rate = np.asarray(frame_rate_hz, dtype=np.float64)[recording]
    duration = np.asarray(duration_s, dtype=np.float64)[recording]
    start = np.asarray(run_starts, dtype=np.float64) / rate
    stop = np.minimum(np.asarray(run_stops, dtype=np.float64) / rate, duration)
    # Frames past the recording's end (a partly filled last frame, padded inference) are not time.
    keep = start < duration
    recording, start, stop = recording[keep], start[keep], stop[keep]
    if merge_gap_s > 0 and start.size > 1:
        joins = (recording[1:] == recording[:-1]) & (start[1:] - stop[:-1] < merge_gap_s)
        if joins.any():
            first = np.concatenate(([True], ~joins))
            last = np.concatenate((~joins, [True]))
            # Runs are sorted and disjoint, so a merged group ends where its last run ends.
            recording, start, stop = recording[first], start[first], stop[last]
    if min_duration_s > 0:
        long_enough = (stop - start) >= min_duration_s
        recording, start, stop = recording[long_enough], start[long_enough], stop[long_enough]
    return recording, start, stop


def _check_probabilities(probabilities: np.ndarray) -> np.ndarray:
    x = np.asarray(probabilities)
    if x.ndim != 1:
        raise SzflowError(f"probabilities must be one value per frame (1-D), got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise SzflowError("probabilities contain NaN or infinite values")
    return x


def probs_to_events(
    probabilities: np.ndarray,
    frame_rate_hz: float,
    *,
    smoothing_s: float,
    threshold: float,
    hysteresis_low: float | None = None,
    min_duration_s: float = 0.0,
    merge_gap_s: float = 0.0,
    duration_s: float | None = None,
) -> list[tuple[float, float]]:
    """Seizure events (start_s, stop_s) from one recording's per-frame probabilities.

    Frame k covers [k / rate, (k + 1) / rate). `duration_s` defaults to frames / rate; events are
    clipped to [0, duration_s]. `hysteresis_low` above `threshold` is refused (it would silently
    mean something else).
    """
    if not (math.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ConfigError(f"frame_rate_hz must be > 0, got {frame_rate_hz!r}")
    settings = PostprocessSettings(smoothing_s=float(smoothing_s), threshold=float(threshold),
                                   hysteresis_low=None if hysteresis_low is None else float(hysteresis_low),
                                   min_duration_s=float(min_duration_s), merge_gap_s=float(merge_gap_s))
    if settings.hysteresis_low is not None and settings.hysteresis_low > settings.threshold:
        raise ConfigError(f"hysteresis_low {settings.hysteresis_low} is above threshold {settings.threshold}")
    x = _check_probabilities(probabilities)
    if duration_s is None:
        duration_s = x.size / frame_rate_hz
    smoothed = smooth_probabilities(x, frame_rate_hz, settings.smoothing_s)
    starts, stops = threshold_runs(smoothed, settings.threshold, settings.hysteresis_low)
    _, start, stop = runs_to_events(np.zeros(starts.size, np.int64), starts, stops,
                                    np.array([frame_rate_hz], np.float64), np.array([duration_s], np.float64),
                                    settings.merge_gap_s, settings.min_duration_s)
    return [(float(a), float(b)) for a, b in zip(start, stop)]


def events_of_track(track: Any, point: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Events of one probability track (anything with `probabilities`, `frame_rate_hz` and
    `duration_s`: a `szflow.scoring.ProbabilityTrack`) at an operating point (a mapping holding
    `SETTINGS_KEYS`): the call eval, `szflow detect`, the plots and the review page all make."""
    return probs_to_events(track.probabilities, track.frame_rate_hz, duration_s=track.duration_s,
                           **{key: point[key] for key in SETTINGS_KEYS})


def events_to_annotation(recording_id: str, events, duration_s: float) -> Annotation:
    """An `Annotation` of predicted seizures, ready for `write_csv_bi` / `write_events_tsv`."""
    duration_s = float(duration_s)
    clipped = []
    for start, stop in sorted((float(a), float(b)) for a, b in events):
        start, stop = max(0.0, start), min(duration_s, stop)
        if stop > start:
            clipped.append(Event(start, stop, "seiz"))
    return Annotation(bname=str(recording_id), duration_s=duration_s, events=clipped)
