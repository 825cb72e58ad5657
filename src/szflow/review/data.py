"""What the review page shows of one recording, gathered with the project's own functions.

A `ReviewRecording` holds the network's input traces (from `szflow.edf_store.prepare_store`: the
preprocess chain and float16 quantisation detect and eval use), the per-frame probability track
(`szflow.detect.predict_file`, or a pipeline split's `tracks.npz`), the reference seizures (the
annotation beside the EDF, read by `szflow.data.annotations`) and the montage report (which EDF
signal each electrode was read from). `szflow.review.page` turns a list of them into the HTML page.

Traces are stored in the page as int8 steps of the normalised signal (the network input is clipped
to +-`preprocess.clip`, so 127 steps span it; one step is 0.08 of a channel's interquartile range
at clip 10). Each recording has a budget of trace bytes (`trace_budget_bytes`: 10.8 MB for the
first hour, 3.2 MB per further hour, so that a 1 h page stays under 15 MB and a 24 h page under
120 MB once base64-encoded). The recording is stored whole at the highest rate of `TRACE_RATES_HZ`
that fits the budget, and, when that is below the network's rate, what is left of the budget holds
the network's rate around reference and predicted events (`DETAIL_PAD_S` on each side; the
shortest stretches first, so that as many events as possible are seen at full resolution).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from szflow.config import ELECTRODES, Params
from szflow.data.annotations import read_annotation
from szflow.data.edf import read_edf_header, resolve_header
from szflow.edf_store import prepare_store, recording_id
from szflow.postprocess import events_of_track
from szflow.scoring import ProbabilityTrack
from szflow.scoring.folders import seizure_events
from szflow.signal.resample import resample_block

# Rates a whole recording may be stored at (Hz), highest first; the network's own rate comes first
# when it is one of them (256 Hz with the project's params).
TRACE_RATES_HZ: tuple[float, ...] = (256.0, 128.0, 64.0, 32.0, 16.0)
# Raw int8 trace bytes per recording (base64 makes 4/3 of it): 10.8 MB for the first hour (1 h at
# 128 Hz is 8.8 MB, leaving 420 s at 256 Hz around events), then 3.2 MB per further hour (24 h: 32 Hz
# whole, 52.5 MB, and 6600 s at 256 Hz around events).
BUDGET_FIRST_HOUR = 10.8e6
BUDGET_PER_HOUR = 3.2e6
# Full-rate stretches around events: this much signal on each side of an event.
DETAIL_PAD_S = 30.0
INT8_STEPS = 127


@dataclass
class TraceSegment:
    """Samples [start, start + n) at `rate_hz` of every channel, int8 steps of `step` units."""

    rate_hz: float
    start_s: float
    data: np.ndarray  # (channels, n) int8

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])


@dataclass
class ReviewRecording:
    recording_id: str
    edf_path: str
    duration_s: float
    track: ProbabilityTrack
    reference: list[tuple[float, float]] | None  # None: no annotation file beside the EDF
    channels: list[str]
    step: float  # signal units (interquartile ranges) of one int8 step
    segments: list[TraceSegment]
    montage: dict = field(default_factory=dict)


def trace_budget_bytes(duration_s: float) -> float:
    hours = duration_s / 3600.0
    return BUDGET_FIRST_HOUR + BUDGET_PER_HOUR * max(0.0, hours - 1.0)


def whole_rate(duration_s: float, network_rate_hz: float, n_channels: int = len(ELECTRODES)) -> float:
    """The highest rate (at most the network's) at which the whole recording fits its budget."""
    budget = trace_budget_bytes(duration_s)
    rates = [r for r in TRACE_RATES_HZ if r <= network_rate_hz] or [network_rate_hz]
    for rate in rates:
        if n_channels * duration_s * rate <= budget:
            return rate
    return rates[-1]


def detail_spans(events: Iterable[tuple[float, float]], duration_s: float, max_s: float,
                 pad_s: float = DETAIL_PAD_S) -> list[tuple[float, float]]:
    """Merged [start, stop) stretches (whole seconds) around `events`, within the recording, the
    shortest first up to `max_s` in all (a stretch is kept whole or not at all), in time order."""
    spans: list[list[float]] = []
    for start, stop in sorted(events):
        a = max(0.0, math.floor(start - pad_s))
        b = min(duration_s, math.ceil(stop + pad_s))
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        elif b > a:
            spans.append([a, b])
    kept, total = [], 0.0
    for a, b in sorted(spans, key=lambda span: (span[1] - span[0], span[0])):
        if total + (b - a) > max_s:
            continue
        kept.append((a, b))
        total += b - a
    return sorted(kept)


def to_int8(block: np.ndarray, clip: float) -> np.ndarray:
    """Normalised float samples (|x| <= clip) -> int8 steps of clip / 127."""
    scaled = np.rint(np.asarray(block, np.float32) * (INT8_STEPS / clip))
    return np.clip(scaled, -INT8_STEPS, INT8_STEPS).astype(np.int8)


def read_segment(store, first: int, stop: int, store_rate: float, rate: float, clip: float,
                 piece: int) -> np.ndarray:
    """int8 samples [first, stop) of the store's one recording at `rate`, read `piece` samples at a
    time (a chunked store serves spans of at most one window) with a one-second settling margin on
    each side for the anti-aliasing filter of the rate change."""
    margin = int(store_rate) if rate != store_rate else 0
    total = store.length(0)
    step = max(1, piece - 2 * margin)
    ratio = rate / store_rate
    out = []
    for a in range(first, stop, step):
        b = min(a + step, stop)
        lo, hi = max(0, a - margin), min(total, b + margin)
        block = store.span(0, lo, hi)[0].astype(np.float32)
        if rate != store_rate:
            block = resample_block(block, store_rate, rate)
        keep_a = round((a - lo) * ratio)
        keep_b = keep_a + round(b * ratio) - round(a * ratio)
        out.append(to_int8(block[:, keep_a:keep_b], clip))
    return np.concatenate(out, axis=1) if out else np.zeros((len(ELECTRODES), 0), np.int8)


def montage_report(edf_path: str | Path, min_electrodes: int = len(ELECTRODES)) -> dict:
    """Which EDF signals the electrodes were read from, which electrodes were reconstructed from
    derivations or are missing (`szflow.data.electrodes`), and the EDF's other signals (not used)."""
    header = read_edf_header(edf_path)
    montage = resolve_header(header, min_electrodes)
    used = set(montage.sources)
    direct = dict(zip(montage.direct, montage.sources, strict=False))
    return {
        "read": [{"electrode": name, "label": header.labels[i], "rate_hz": header.sample_rates[i]}
                 for name, i in direct.items()],
        "reconstructed": list(montage.derived),
        "missing": list(montage.missing),
        "other_signals": [header.labels[i] for i in range(header.n_signals) if i not in used],
    }


def reference_annotation_path(edf_path: str | Path) -> Path | None:
    """The annotation beside an EDF: TUSZ `<stem>.csv_bi`, or BIDS `<stem without _eeg>_events.tsv`."""
    edf_path = Path(edf_path)
    for candidate in (edf_path.with_suffix(".csv_bi"),
                      edf_path.with_name(recording_id(edf_path) + "_events.tsv")):
        if candidate.is_file():
            return candidate
    return None


def read_reference(edf_path: str | Path) -> list[tuple[float, float]] | None:
    path = reference_annotation_path(edf_path)
    return None if path is None else seizure_events(read_annotation(path))


def predicted_everywhere(track: ProbabilityTrack, points: dict[str, dict]) -> list[tuple[float, float]]:
    """The predicted events of every operating point (where full-rate detail is kept)."""
    events: list[tuple[float, float]] = []
    for point in points.values():
        events += events_of_track(track, point)
    return events


def review_recording(edf_path: str | Path, track: ProbabilityTrack, params: Params, points: dict[str, dict],
                     reference: Sequence[tuple[float, float]] | None) -> ReviewRecording:
    """Traces, montage report and events of one recording whose probability track is known."""
    edf_path = Path(edf_path)
    montage = montage_report(edf_path, params.preprocess.min_electrodes)
    clip = float(params.preprocess.clip)
    store = prepare_store(edf_path, params, window_s=params.sampler.window_s)
    try:
        store_rate = float(store.sample_rate_hz)
        total = store.length(0)
        piece = round(params.sampler.window_s * store_rate)
        duration = total / store_rate
        rate = whole_rate(duration, store_rate)
        segments = [TraceSegment(rate, 0.0, read_segment(store, 0, total, store_rate, rate, clip, piece))]
        if rate < store_rate:
            events = list(reference or []) + predicted_everywhere(track, points)
            left = trace_budget_bytes(duration) - len(ELECTRODES) * duration * rate
            for a, b in detail_spans(events, duration, max_s=left / (len(ELECTRODES) * store_rate)):
                first, stop = round(a * store_rate), min(total, round(b * store_rate))
                segments.append(TraceSegment(store_rate, first / store_rate,
                                             read_segment(store, first, stop, store_rate, store_rate, clip, piece)))
    finally:
        store.close()
    return ReviewRecording(
        recording_id=track.recording_id, edf_path=str(edf_path), duration_s=float(track.duration_s), track=track,
        reference=None if reference is None else [(float(a), float(b)) for a, b in reference],
        channels=list(ELECTRODES), step=clip / INT8_STEPS, segments=segments, montage=montage,
    )
