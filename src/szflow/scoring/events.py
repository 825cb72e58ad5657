"""The scoring input: one recording's reference and hypothesis seizure intervals, in seconds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from szflow.errors import SzflowError

SECONDS_PER_DAY = 86_400.0

Interval = tuple[float, float]


@dataclass
class RecordingEvents:
    """Seizure intervals of one recording. Scorers sort them and clip them to [0, duration_s];
    an interval that lies wholly outside the recording is dropped (it is not time of this file)."""

    recording_id: str
    duration_s: float
    reference: list[Interval] = field(default_factory=list)
    hypothesis: list[Interval] = field(default_factory=list)


def fa_per_24h(false_alarms: float, duration_s: float) -> float:
    """False alarms per 24 h over a corpus: FP / (sum of recording durations) x 86,400."""
    if duration_s <= 0:
        # No recorded time: nothing could have been a false alarm (events are clipped to the file).
        return 0.0
    return float(false_alarms) / float(duration_s) * SECONDS_PER_DAY


def clean_intervals(intervals: Iterable[Sequence[float]], duration_s: float, what: str) -> list[Interval]:
    """Sorted intervals clipped to [0, duration_s]; bad values raise `SzflowError` naming `what`."""
    out: list[Interval] = []
    for item in intervals:
        start, stop = float(item[0]), float(item[1])
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise SzflowError(f"{what}: non-finite interval ({start}, {stop})")
        if stop < start:
            raise SzflowError(f"{what}: interval ends before it starts ({start}, {stop})")
        lo, hi = max(start, 0.0), min(stop, duration_s)
        # Keep what lies in the recording; a zero-length event inside it is still an event to NEDC.
        if hi > lo or (start == stop and 0.0 <= start <= duration_s):
            out.append((lo, hi))
    out.sort()
    return out


@dataclass
class PreparedRecording:
    recording_id: str
    duration_s: float
    reference: list[Interval]
    hypothesis: list[Interval]


def prepare(recordings: Iterable[RecordingEvents]) -> list[PreparedRecording]:
    """Validate and normalise every recording once, so each scorer sees the same intervals."""
    prepared = []
    for rec in recordings:
        duration = float(rec.duration_s)
        if not (math.isfinite(duration) and duration >= 0):
            raise SzflowError(
                f"recording {rec.recording_id}: duration {rec.duration_s!r} is not a number >= 0")
        prepared.append(PreparedRecording(
            recording_id=str(rec.recording_id), duration_s=duration,
            reference=clean_intervals(rec.reference, duration, f"recording {rec.recording_id} reference"),
            hypothesis=clean_intervals(rec.hypothesis, duration, f"recording {rec.recording_id} hypothesis"),
        ))
    return prepared


def is_prepared(recordings) -> bool:
    return isinstance(recordings, list) and all(isinstance(r, PreparedRecording) for r in recordings)


def ensure_prepared(recordings) -> list[PreparedRecording]:
    return recordings if is_prepared(recordings) else prepare(recordings)


def flatten(recordings: list[PreparedRecording], which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recording index, start, stop) arrays of every interval in the corpus, sorted by (recording, start)."""
    rec_idx: list[int] = []
    starts: list[float] = []
    stops: list[float] = []
    for i, rec in enumerate(recordings):
        intervals = getattr(rec, which)
        rec_idx.extend([i] * len(intervals))
        for start, stop in intervals:
            starts.append(start)
            stops.append(stop)
    return (np.asarray(rec_idx, dtype=np.int64), np.asarray(starts, dtype=np.float64),
            np.asarray(stops, dtype=np.float64))


def total_duration(recordings: list[PreparedRecording]) -> float:
    return float(math.fsum(rec.duration_s for rec in recordings))
