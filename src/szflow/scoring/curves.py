"""Frame-level ROC / PR curves and AUROC of probability tracks (threshold-free model quality).

Labels: frame k (covering [k / rate, (k + 1) / rate)) is a seizure frame when its centre lies in a
reference seizure; frames whose centre lies past the recording's end are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from szflow.postprocess import _check_probabilities, smooth_probabilities
from szflow.scoring.events import clean_intervals


def frame_labels(track, n_frames: int | None = None) -> np.ndarray:
    """Boolean seizure label per frame of `track` (reference intervals rasterised at its frame rate)."""
    rate = float(track.frame_rate_hz)
    n = len(track.probabilities) if n_frames is None else n_frames
    centres = (np.arange(n, dtype=np.float64) + 0.5) / rate
    labels = np.zeros(n, dtype=bool)
    for start, stop in clean_intervals(track.reference, float(track.duration_s), str(track.recording_id)):
        labels[(centres >= start) & (centres < stop)] = True
    return labels


def _scores_and_labels(tracks: Sequence, smoothing_s: float) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = [], []
    for track in tracks:
        p = _check_probabilities(track.probabilities)
        rate = float(track.frame_rate_hz)
        inside = (np.arange(p.size) + 0.5) / rate < float(track.duration_s)
        x = smooth_probabilities(p, rate, smoothing_s) if smoothing_s > 0 else p
        scores.append(np.asarray(x)[inside])
        labels.append(frame_labels(track)[inside])
    if not scores:
        return np.zeros(0), np.zeros(0, bool)
    return np.concatenate(scores), np.concatenate(labels)


def _cumulative(tracks: Sequence, smoothing_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, true positives, false positives) at each distinct score."""
    scores, labels = _scores_and_labels(tracks, smoothing_s)
    order = np.argsort(scores, kind="stable")[::-1]
    scores, labels = scores[order], labels[order]
    # The last frame of each run of equal scores: tied frames switch together.
    distinct = np.flatnonzero(np.diff(scores)) if scores.size else np.zeros(0, np.int64)
    ends = np.concatenate((distinct, [scores.size - 1])) if scores.size else distinct
    tps = np.cumsum(labels)[ends]
    fps = (ends + 1) - tps
    return scores[ends], tps, fps


def roc_curve(tracks: Sequence, smoothing_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), starting at (0, 0) with threshold inf."""
    thresholds, tps, fps = _cumulative(tracks, smoothing_s)
    positives = tps[-1] if tps.size else 0
    negatives = fps[-1] if fps.size else 0
    tpr = np.concatenate(([0.0], tps / positives if positives else np.full(tps.size, np.nan)))
    fpr = np.concatenate(([0.0], fps / negatives if negatives else np.full(fps.size, np.nan)))
    return fpr, tpr, np.concatenate(([np.inf], thresholds))


def pr_curve(tracks: Sequence, smoothing_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) by falling threshold, starting at precision 1, recall 0."""
    thresholds, tps, fps = _cumulative(tracks, smoothing_s)
    positives = tps[-1] if tps.size else 0
    precision = np.concatenate(([1.0], tps / np.maximum(tps + fps, 1)))
    recall = np.concatenate(([0.0], tps / positives if positives else np.full(tps.size, np.nan)))
    return precision, recall, np.concatenate(([np.inf], thresholds))


def auroc(tracks: Sequence, smoothing_s: float = 0.0) -> float:
    """Frame-level area under the ROC curve (ties count half); NaN without both classes."""
    fpr, tpr, _ = roc_curve(tracks, smoothing_s)
    if fpr.size < 2 or np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    # Trapezoids by hand: np.trapezoid is numpy >= 2 only, np.trapz is gone from numpy 2.x.
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
