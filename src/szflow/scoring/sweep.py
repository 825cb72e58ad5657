"""Threshold sweeps (FROC) and operating-point tuning on per-frame probability tracks.

A sweep never re-reads files or rebuilds masks per threshold (DESIGN.md §8). For each smoothing
setting the corpus is smoothed once and laid end to end (a -inf frame between recordings, so no
run crosses a boundary); one `searchsorted` of every frame into the sorted thresholds says, for
every frame, how many thresholds it reaches. A run of frames >= threshold k starts exactly where
that count rises past k and ends where it falls back, so the run boundaries of ALL thresholds come
from the frames where the count changes, in one pass. Events then go through the same
`runs_to_events` as `probs_to_events`, and OVLP is counted for the whole corpus with vectorised
searches (`szflow.scoring.nedc.ovlp_arrays`). Each sweep row therefore equals
`score_ovlp` of `probs_to_events` at that threshold (tests/test_postprocess.py checks it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from szflow.errors import SzflowError
from szflow.postprocess import (
    PostprocessSettings,
    _check_probabilities,
    _mask_runs,
    runs_to_events,
    smooth_probabilities,
)
from szflow.scoring.events import SECONDS_PER_DAY, clean_intervals
from szflow.scoring.intervals import (
    CONFIDENCE,
    certifies,
    fa_dispersion,
    fa_interval,
    fa_prediction_interval,
    hours_to_certify,
    subject_of,
)
from szflow.scoring.nedc import _union, ovlp_masks

# Frames per block when laying tracks end to end (~35 h at 4 Hz): bounds the temporary arrays.
_BLOCK_FRAMES = 500_000


@dataclass
class ProbabilityTrack:
    """One recording's per-frame seizure probabilities and its reference seizures (seconds)."""

    recording_id: str
    probabilities: np.ndarray
    frame_rate_hz: float
    duration_s: float
    reference: list[tuple[float, float]] = field(default_factory=list)


def target_key(target: float) -> str:
    """String key of a false-alarm target: '10', '2.5', '1' (results are never keyed by floats)."""
    return f"{float(target):g}"


class _Corpus:
    """Tracks prepared once: rates, durations, cleaned references, and their union for FA counts."""

    def __init__(self, tracks: Sequence[ProbabilityTrack]):
        self.tracks = list(tracks)
        if not self.tracks:
            raise SzflowError("no probability tracks to sweep")
        self.rate = np.array([float(t.frame_rate_hz) for t in self.tracks], dtype=np.float64)
        self.duration = np.array([float(t.duration_s) for t in self.tracks], dtype=np.float64)
        if not (np.isfinite(self.rate).all() and (self.rate > 0).all()):
            raise SzflowError("every track needs a frame rate > 0")
        if not (np.isfinite(self.duration).all() and (self.duration >= 0).all()):
            raise SzflowError("every track needs a duration >= 0")
        self.probabilities = [_check_probabilities(t.probabilities) for t in self.tracks]
        rec: list[int] = []
        starts: list[float] = []
        stops: list[float] = []
        for i, track in enumerate(self.tracks):
            for a, b in clean_intervals(track.reference, float(track.duration_s),
                                        f"track {track.recording_id} reference"):
                rec.append(i)
                starts.append(a)
                stops.append(b)
        self.ref = (np.asarray(rec, np.int64), np.asarray(starts, np.float64), np.asarray(stops, np.float64))
        self.ref_union = _union(*self.ref)
        self.targets = int(self.ref[0].size)
        # Patient of each recording (an index), for the clustering of false alarms.
        subjects = [subject_of(t.recording_id) for t in self.tracks]
        names = {name: k for k, name in enumerate(dict.fromkeys(subjects))}
        self.subject = np.asarray([names[name] for name in subjects], np.int64)
        self.subjects = len(names)
        self.total_duration = float(math.fsum(self.duration.tolist()))

    def blocks(self) -> list[list[int]]:
        out: list[list[int]] = []
        current: list[int] = []
        frames = 0
        for i, p in enumerate(self.probabilities):
            if current and frames + p.size > _BLOCK_FRAMES:
                out.append(current)
                current, frames = [], 0
            current.append(i)
            frames += p.size + 1
        if current:
            out.append(current)
        return out

    def runs(self, smoothing_s: float, thresholds: np.ndarray, hysteresis_low: float | None
             ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For each threshold (sorted ascending, unique): frame runs (recording, start, stop) sorted
        by (recording, start), exactly those `threshold_runs` finds track by track."""
        per_block = [self._block_runs(block, smoothing_s, thresholds, hysteresis_low)
                     for block in self.blocks()]
        out = []
        for k in range(thresholds.size):
            parts = [runs[k] for runs in per_block]
            out.append(tuple(np.concatenate([p[j] for p in parts]) for j in range(3)))
        return out

    def _block_runs(self, block: list[int], smoothing_s: float, thresholds: np.ndarray,
                    hysteresis_low: float | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        n_thr = thresholds.size
        pieces = [np.array([-np.inf])]
        begins = []
        cursor = 1
        for i in block:
            smoothed = smooth_probabilities(self.probabilities[i], self.rate[i], smoothing_s)
            pieces += [smoothed, np.array([-np.inf])]
            begins.append(cursor)
            cursor += smoothed.size + 1
        x = np.concatenate(pieces)
        begins_arr = np.asarray(begins, np.int64)

        # level[i] = number of thresholds <= x[i], so frame i is >= threshold k exactly when k < level[i].
        level = np.searchsorted(thresholds, x, side="right")
        step = np.diff(level)
        rise = np.flatnonzero(step > 0)
        fall = np.flatnonzero(step < 0)
        # A rise between frames i and i+1 starts a run at i+1 for thresholds level[i] .. level[i+1]-1.
        start_k, start_pos = _explode(level[rise], level[rise + 1], rise + 1)
        stop_k, stop_pos = _explode(level[fall + 1], level[fall], fall + 1)
        # Stable sorts by threshold keep positions ascending within each threshold; small
        # integer keys let numpy use its radix sort.
        key_type = np.int16 if n_thr < np.iinfo(np.int16).max else np.int64
        order = np.argsort(start_k.astype(key_type), kind="stable")
        start_k, start_pos = start_k[order], start_pos[order]
        order = np.argsort(stop_k.astype(key_type), kind="stable")
        stop_k, stop_pos = stop_k[order], stop_pos[order]

        event_k, event_start, event_stop = start_k, start_pos, stop_pos
        if hysteresis_low is not None:
            low_starts, low_stops = _mask_runs(x >= hysteresis_low)
            hyst = thresholds[start_k] > hysteresis_low
            if low_starts.size and hyst.any():
                # Runs of a threshold alternate start/stop, so start i pairs with stop i. Above
                # hysteresis_low an event runs from the first high start inside a low run to the
                # end of that low run; later high starts inside the same low run are part of it.
                low_run = np.searchsorted(low_starts, start_pos, side="right") - 1
                first = np.ones(start_k.size, dtype=bool)
                first[1:] = (start_k[1:] != start_k[:-1]) | (low_run[1:] != low_run[:-1])
                keep = ~hyst | first
                stops = np.where(hyst, low_stops[np.maximum(low_run, 0)], stop_pos)
                event_k, event_start, event_stop = start_k[keep], start_pos[keep], stops[keep]

        bounds = np.searchsorted(event_k, np.arange(n_thr + 1), side="left")
        rec = np.asarray(block, np.int64)
        out = []
        for k in range(n_thr):
            a = event_start[bounds[k]:bounds[k + 1]]
            b = event_stop[bounds[k]:bounds[k + 1]]
            local = np.searchsorted(begins_arr, a, side="right") - 1
            out.append((rec[local], a - begins_arr[local], b - begins_arr[local]))
        return out


def _explode(k_lo: np.ndarray, k_hi: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, pos) for every k in [k_lo, k_hi) of every position."""
    counts = (k_hi - k_lo).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.repeat(k_lo.astype(np.int64), counts) + (np.arange(total, dtype=np.int64) - first)
    return k, np.repeat(pos.astype(np.int64), counts)


def _sorted_thresholds(thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray([float(t) for t in thresholds], dtype=np.float64)
    if values.size == 0:
        raise SzflowError("no thresholds to sweep")
    if not np.isfinite(values).all():
        raise SzflowError("thresholds must be finite numbers")
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, inverse


def _ovlp_row(corpus: _Corpus, events: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    hits, false_alarms = ovlp_masks(corpus.ref, events, ref_union=corpus.ref_union, hyp_disjoint=True)
    tp, fp = int(hits.sum()), int(false_alarms.sum())
    fn = corpus.targets - tp
    per_patient = np.bincount(corpus.subject[events[0][false_alarms]], minlength=corpus.subjects)
    return {
        "sensitivity": tp / corpus.targets if corpus.targets else 0.0,
        "fa_per_24h": fp / corpus.total_duration * SECONDS_PER_DAY if corpus.total_duration > 0 else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "fa_dispersion": fa_dispersion(per_patient),
    }


def sweep_thresholds(tracks: Sequence[ProbabilityTrack], thresholds: Sequence[float],
                     postprocess=None) -> list[dict]:
    """OVLP sensitivity and FA/24h at each threshold, the other post-processing settings held fixed.

    `postprocess` is a `PostprocessSettings` or a mapping such as an operating point; its own
    threshold is ignored. A hysteresis_low above a swept threshold acts
    as no hysteresis at that threshold. Rows come back in the order of `thresholds`:
    {"threshold", "sensitivity", "fa_per_24h", "tp", "fp", "fn", "fa_dispersion"}.
    """
    settings = PostprocessSettings.from_any(postprocess)
    corpus = _Corpus(tracks)
    unique, inverse = _sorted_thresholds(thresholds)
    runs = corpus.runs(settings.smoothing_s, unique, settings.hysteresis_low)
    rows = []
    for k, threshold in enumerate(unique):
        events = runs_to_events(*runs[k], corpus.rate, corpus.duration, settings.merge_gap_s,
                                settings.min_duration_s)
        rows.append({"threshold": float(threshold), **_ovlp_row(corpus, events)})
    return [dict(rows[i]) for i in inverse]


def tune_operating_points(
    tracks: Sequence[ProbabilityTrack],
    targets_fa_per_24h: Sequence[float],
    threshold_grid: Sequence[float],
    smoothing_grid_s: Sequence[float] = (0.0,),
    min_duration_grid_s: Sequence[float] = (0.0,),
    merge_gap_grid_s: Sequence[float] = (0.0,),
    hysteresis_low_grid: Sequence[float | None] = (None,),
    certify: bool = False,
    confidence: float = CONFIDENCE,
    between_split_dispersion: float = 1.0,
) -> dict[str, dict]:
    """For each FA/24h target, the grid setting with the highest OVLP sensitivity whose FA/24h is
    <= the target on these tracks; ties go to the lower FA/24h, then to the first in grid order
    (smoothing, hysteresis, threshold, min duration, merge gap, each as given). A hysteresis_low at
    or above a threshold means no hysteresis at that threshold (the row says None); such a row is
    skipped when None is in the grid too, so no setting is scored twice.

    Keys are strings ('10', '2.5'). Values: smoothing_s, threshold, hysteresis_low, min_duration_s,
    merge_gap_s, sensitivity, fa_per_24h, tp, fp, fn, target_fa_per_24h and `feasible`. When no
    setting meets a target, the one with the lowest FA/24h (then highest sensitivity) is returned
    with feasible = False, so a caller can see it rather than get a silently wrong point.

    With `certify`, a setting qualifies only when the upper end of the FA/24h predicted for a new
    split of the same hours (`confidence`, false alarms clustered by patient) is at or below the
    target, not its observed rate (`szflow.scoring.intervals`): the point then keeps its promise on
    new data of the same kind. The prediction counts false alarms with the patient dispersion times
    `between_split_dispersion` (how much more whole splits vary; 1: not at all). Each point also
    gets `certified`, `fa_dispersion`, `between_split_dispersion`,
    `fa_per_24h_interval` (the exact Poisson interval of the rate), `fa_per_24h_predicted` (the
    prediction it was certified on), `hours_scored` and `hours_needed` (the hours without a single
    false alarm that certifying the target takes). When nothing qualifies, the point is the setting
    with the fewest false alarms (then the highest sensitivity), marked certified = False.
    """
    corpus = _Corpus(tracks)
    unique, _ = _sorted_thresholds(threshold_grid)
    threshold_order = list(dict.fromkeys(float(t) for t in threshold_grid))
    index_of = {float(t): k for k, t in enumerate(unique)}
    candidates: list[dict] = []
    lows = list(dict.fromkeys(None if low is None else float(low) for low in hysteresis_low_grid))
    for smoothing_s in smoothing_grid_s:
        for hysteresis_low in lows:
            runs = corpus.runs(float(smoothing_s), unique, hysteresis_low)
            for threshold in threshold_order:
                hysteresis = hysteresis_low is not None and hysteresis_low < threshold
                if hysteresis_low is not None and not hysteresis and None in lows:
                    continue
                k = index_of[threshold]
                low = hysteresis_low if hysteresis else None
                for min_duration_s in min_duration_grid_s:
                    for merge_gap_s in merge_gap_grid_s:
                        events = runs_to_events(*runs[k], corpus.rate, corpus.duration, float(merge_gap_s),
                                                float(min_duration_s))
                        candidates.append({
                            "smoothing_s": float(smoothing_s), "threshold": threshold, "hysteresis_low": low,
                            "min_duration_s": float(min_duration_s), "merge_gap_s": float(merge_gap_s),
                            **_ovlp_row(corpus, events),
                        })
    duration = corpus.total_duration
    between = max(1.0, float(between_split_dispersion))
    result: dict[str, dict] = {}
    for target in targets_fa_per_24h:
        target = float(target)
        if certify:
            feasible = [c for c in candidates
                        if certifies(c["fp"], duration, target, c["fa_dispersion"] * between, confidence)]
        else:
            # A relative 1e-12 keeps FP / duration x 86,400 float noise from failing an exact hit.
            feasible = [c for c in candidates if c["fa_per_24h"] <= target * (1 + 1e-12)]
        if feasible:
            best = max(feasible, key=lambda c: (c["sensitivity"], -c["fa_per_24h"]))
        else:
            best = min(candidates, key=lambda c: (c["fa_per_24h"], -c["sensitivity"]))
        point = {**best, "target_fa_per_24h": target, "feasible": bool(feasible)}
        if certify:
            point.update({
                "certified": bool(feasible),
                "between_split_dispersion": between,
                "fa_per_24h_interval": fa_interval(best["fp"], duration, confidence),
                "fa_per_24h_predicted": fa_prediction_interval(best["fp"], duration, duration,
                                                               best["fa_dispersion"] * between, confidence),
                "hours_scored": duration / 3600.0,
                "hours_needed": hours_to_certify(target, confidence, between),
            })
        result[target_key(target)] = point
    return result
