"""SzCORE scoring (Dan et al., Epilepsia 2025) through the `timescoring` package.

Event scoring: 30 s pre / 60 s post tolerance, any overlap (minimum overlap 0), events closer than
90 s merged, events longer than 5 min split. Sample scoring: per label sample at `fs` (1 Hz, the
SzCORE label rate). The definition: each recording becomes two `timescoring.annotations.Annotation`s
built from its events, `Annotation(events, fs, ceil(duration_s * fs))`, scored by
`timescoring.scoring.EventScoring` / `SampleScoring`, and the counts are summed over recordings.
`per_file=True` does exactly that.

Speed (the default): timescoring's cost is its masks (a few per call, 10 Hz over the whole
recording) and its per-call Python overhead. Only the time near events can change a count: events
further apart than the merge distance and both tolerances never interact, and empty samples add
nothing to sample counts. So we cut every recording into clusters of events (reference and
hypothesis together) separated by more than `_ISLAND_GAP_S`, lay the clusters of many recordings
end to end with that much silence between them, and call timescoring once per block of clusters.
Each cluster moves by a whole, even number of seconds, so every event rounds to the same samples
(Python rounds halves to even) and keeps every distance to its neighbours; recordings with no
events cost nothing. The counts equal the per-recording calls (tests/test_scoring.py checks this)
except when an event time lies within float rounding (~1e-12 s) of a half-sample boundary, or a gap
or duration within ~1e-12 s of 90 s / 300 s; use `per_file=True` if that matters. With a minimum
overlap above 0 the relative overlap depends on where a file ends, so that setting always scores
per recording.

FA/24h = FP / (sum of recording durations) x 86,400 as for NEDC (timescoring's own `fpRate` divides
by the mask length instead). For sample scoring tp/fp/fn count samples (seconds at 1 Hz).
Undefined ratios (no reference events, no detections) are None, where timescoring gives NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np
from timescoring import scoring as ts_scoring
from timescoring.annotations import Annotation as TsAnnotation

from szflow.errors import SzflowError
from szflow.scoring.events import PreparedRecording, ensure_prepared, fa_per_24h, total_duration

# Written into every result: 0.0.7 changed F1 when a subject has no detections, and published
# SzCORE F1 values moved with it (pyproject.toml pins it).
TIMESCORING_VERSION = version("timescoring")

# timescoring's EventScoring works at a hard-coded 10 Hz.
_EVENT_FS = 10
# Blocks of at most this many 10 Hz samples (~28 h of event time) per timescoring call: large
# enough to amortise its per-call overhead, small enough that its masks stay small.
_BLOCK_SAMPLES_10HZ = 1_000_000


@dataclass(frozen=True)
class SzcoreParams:
    """SzCORE event-scoring parameters (the published defaults)."""

    tolerance_start_s: float = 30.0
    tolerance_end_s: float = 60.0
    min_overlap: float = 0.0
    max_event_duration_s: float = 5 * 60.0
    min_duration_between_events_s: float = 90.0

    def timescoring(self) -> ts_scoring.EventScoring.Parameters:
        return ts_scoring.EventScoring.Parameters(
            toleranceStart=self.tolerance_start_s,
            toleranceEnd=self.tolerance_end_s,
            minOverlap=self.min_overlap,
            maxEventDuration=self.max_event_duration_s,
            minDurationBetweenEvents=self.min_duration_between_events_s,
        )

    def island_gap_s(self) -> int:
        """Silence that keeps two events from interacting: more than the merge distance and either
        tolerance, as a whole even number of seconds."""
        reach = max(self.tolerance_start_s, self.tolerance_end_s, self.min_duration_between_events_s) + 10.0
        return 2 * math.ceil(reach / 2)


SZCORE = SzcoreParams()


def label_samples(duration_s: float, fs: int) -> int:
    """Label samples of a recording: enough to cover it (a partial last second is still labelled)."""
    # The 1e-6 keeps a duration like 600.0000000001 s (float noise) at 600 samples.
    return max(1, math.ceil(duration_s * fs - 1e-6))


def timescoring_annotations(rec: PreparedRecording, fs: int = 1) -> tuple[TsAnnotation, TsAnnotation]:
    """The (reference, hypothesis) timescoring annotations of one recording, as SzCORE scores them."""
    n = label_samples(rec.duration_s, fs)
    return (TsAnnotation(list(rec.reference), fs, n), TsAnnotation(list(rec.hypothesis), fs, n))


@dataclass
class _Block:
    reference: list[tuple[float, float]] = field(default_factory=list)
    hypothesis: list[tuple[float, float]] = field(default_factory=list)
    seconds: int = 0


def _even_floor(x: float) -> int:
    return 2 * math.floor(x / 2)


def _even_ceil(x: float) -> int:
    return 2 * math.ceil(x / 2)


def _layout(recs: list[PreparedRecording], params: SzcoreParams) -> list[_Block]:
    """Event clusters of every recording, moved by whole even seconds into blocks of event time."""
    gap = params.island_gap_s()
    blocks: list[_Block] = []
    block = _Block(seconds=gap)
    for rec in recs:
        tagged = sorted([(a, b, 0) for a, b in rec.reference] + [(a, b, 1) for a, b in rec.hypothesis])
        i = 0
        while i < len(tagged):
            # A cluster: events whose gaps to the cluster so far are all <= gap.
            j, end = i, tagged[i][1]
            while j + 1 < len(tagged) and tagged[j + 1][0] - end <= gap:
                j += 1
                end = max(end, tagged[j][1])
            origin = _even_floor(tagged[i][0])
            span = _even_ceil(end - origin) + gap
            full = (block.seconds + span) * _EVENT_FS > _BLOCK_SAMPLES_10HZ
            if full and (block.reference or block.hypothesis):
                blocks.append(block)
                block = _Block(seconds=gap)
            shift = block.seconds - origin
            for a, b, kind in tagged[i:j + 1]:
                (block.hypothesis if kind else block.reference).append((a + shift, b + shift))
            block.seconds += span
            i = j + 1
    if block.reference or block.hypothesis:
        blocks.append(block)
    return blocks


def _annotations(block: _Block, fs: int) -> tuple[TsAnnotation, TsAnnotation]:
    n = block.seconds * fs
    # timescoring merges and splits events in list order, as a per-recording call would see them.
    return TsAnnotation(sorted(block.reference), fs, n), TsAnnotation(sorted(block.hypothesis), fs, n)


def _check_fs(fs: int) -> int:
    if int(fs) != fs or fs <= 0:
        raise SzflowError(f"SzCORE label rate fs must be a positive whole number of Hz, got {fs!r}")
    return int(fs)


def _counts(recs: list[PreparedRecording], fs: int, params: SzcoreParams, per_file: bool,
            event: bool, sample: bool) -> tuple[list[int], list[int]]:
    """Summed [refTrue, tp, fp] of event and of sample scoring."""
    ev = [0, 0, 0]
    sa = [0, 0, 0]
    ts_params = params.timescoring()
    if per_file or params.min_overlap != 0:
        pairs = (timescoring_annotations(rec, fs) for rec in recs)
    else:
        pairs = (_annotations(block, fs) for block in _layout(recs, params))
    for ref, hyp in pairs:
        if event:
            e = ts_scoring.EventScoring(ref, hyp, ts_params)
            ev = [ev[0] + int(e.refTrue), ev[1] + int(e.tp), ev[2] + int(e.fp)]
        if sample:
            s = ts_scoring.SampleScoring(ref, hyp, fs)
            sa = [sa[0] + int(s.refTrue), sa[1] + int(s.tp), sa[2] + int(s.fp)]
    return ev, sa


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _result(ref_true: int, tp: int, fp: int, duration_s: float) -> dict:
    fn = ref_true - tp
    return {
        "targets": ref_true,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "sensitivity": _ratio(tp, ref_true),
        "precision": _ratio(tp, tp + fp),
        # timescoring's F1: 2TP / (2TP + FP + FN), undefined with no events at all.
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "fa_per_24h": fa_per_24h(fp, duration_s),
    }


def score_szcore_event(recordings, *, fs: int = 1, params: SzcoreParams = SZCORE,
                       per_file: bool = False) -> dict:
    """SzCORE event scoring summed over recordings: targets, tp, fp, fn, sensitivity, precision,
    f1, fa_per_24h. `targets` counts reference events after timescoring's merging and splitting."""
    recs = ensure_prepared(recordings)
    ev, _ = _counts(recs, _check_fs(fs), params, per_file, event=True, sample=False)
    return _result(*ev, total_duration(recs))


def score_szcore_sample(recordings, *, fs: int = 1, per_file: bool = False) -> dict:
    """SzCORE sample scoring summed over recordings (counts in samples at `fs`)."""
    recs = ensure_prepared(recordings)
    _, sa = _counts(recs, _check_fs(fs), SZCORE, per_file, event=False, sample=True)
    return {**_result(*sa, total_duration(recs)), "fs": int(fs)}


def score_szcore(recordings, *, fs: int = 1, params: SzcoreParams = SZCORE,
                 per_file: bool = False) -> tuple[dict, dict]:
    """(event, sample) results from one layout of the corpus: what `score_corpus` uses."""
    recs = ensure_prepared(recordings)
    fs = _check_fs(fs)
    ev, sa = _counts(recs, fs, params, per_file, event=True, sample=True)
    duration = total_duration(recs)
    return _result(*ev, duration), {**_result(*sa, duration), "fs": fs}


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _subject_ratios(ref_true: int, tp: int, fp: int) -> tuple[float, float, float]:
    """timescoring 0.0.7's sensitivity, precision and F1 (NaN where it gives NaN)."""
    sensitivity = tp / ref_true if ref_true > 0 else math.nan
    precision = tp / (tp + fp) if tp + fp > 0 else math.nan
    f1 = math.nan if ref_true + fp == 0 else 2 * tp / (2 * tp + fp + (ref_true - tp))
    return sensitivity, precision, f1


def score_szcore_event_per_subject(subjects: dict[str, list], *, params: SzcoreParams = SZCORE) -> dict:
    """SzCORE event scores averaged per subject, as the SzCORE benchmark reports them: each
    subject's counts are summed over its recordings, its sensitivity, precision, F1 and FA/24h
    computed as timescoring does, and each score averaged over the subjects where it is defined
    (NaN-mean; None when it is defined for none). `subjects`: {subject: its recordings}."""
    rows = []
    for recs in subjects.values():
        recs = ensure_prepared(recs)
        ev, _ = _counts(recs, 1, params, False, event=True, sample=False)
        duration = total_duration(recs)
        rows.append((*_subject_ratios(*ev), fa_per_24h(ev[2], duration)))
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)

    def mean(column: int) -> float | None:
        values = table[:, column]
        values = values[~np.isnan(values)]
        return _nan_to_none(float(values.mean())) if values.size else None

    return {"subjects": len(rows), "sensitivity": mean(0), "precision": mean(1), "f1": mean(2),
            "fa_per_24h": mean(3)}
