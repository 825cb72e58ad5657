"""Hard background windows: seizure-free training windows around what the classical baseline flags.

The network's confident false alarms on the synthetic corpus are seizure-like artifacts (steady
2-6 Hz rhythmic movement, chewing; docs/training.md), which are rare in uniformly drawn background
windows. The line-length / band-power baseline, fitted on the same training recordings, scores
exactly those stretches highest: on eval, the network's false alarms sit in the top 1 % of the
baseline's background scores. So the sampler's `hard_background` class draws background windows
that contain one of the `top_fraction` highest-scoring background frames of the training
recordings, no label other than the seizure annotations needed, on any corpus.

Each flagged frame contributes the run of window starts that keep it at least `margin_s` inside the
window, intersected with the recording's background starts (windows with no seizure sample). A
window holding several flagged frames is drawn more often, and the flagged stretch lands anywhere
in the window, not only at its centre.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from szflow.cache.sampler import BACKGROUND, _recording_spans, class_runs
from szflow.errors import SzflowError

DEFAULT_MARGIN_S = 5.0


def _background_frames(store, row: int, n_frames: int, samples_per_frame: int) -> np.ndarray:
    """True for the frames of `row` that hold no seizure sample."""
    keep = np.ones(n_frames, dtype=bool)
    for a, b in _recording_spans(store, row):
        keep[a // samples_per_frame: -(-b // samples_per_frame)] = False
    return keep


def hard_background_runs(store, recording_ids: Sequence[str], scores: Mapping[str, np.ndarray], *,
                         window_s: float, frame_rate_hz: float, top_fraction: float,
                         margin_s: float = DEFAULT_MARGIN_S) -> tuple[list[tuple[int, int, int]], dict]:
    """(row, first_start, count) runs of background window starts around the top-scoring background
    frames of `recording_ids`, and a summary (threshold, flagged frames, runs, windows).

    `scores[recording_id]` is the baseline's per-frame score of that recording (frames at
    `frame_rate_hz`, as `szflow.baseline.fit_baseline_with_scores` returns them).
    """
    if not 0 < top_fraction <= 1:
        raise SzflowError(f"hard background top_fraction must be in (0, 1], got {top_fraction}")
    rate = store.sample_rate_hz
    samples_per_frame = round(rate / frame_rate_hz)
    window = round(window_s * rate)
    margin = min(round(margin_s * rate), window // 2)
    rows, background, values = [], [], []
    for rid in recording_ids:
        if str(rid) not in scores:
            raise SzflowError(f"hard background: no baseline scores for recording {rid}")
        row = store.row_of(rid)
        score = np.asarray(scores[str(rid)], dtype=np.float64)
        rows.append(row)
        background.append(_background_frames(store, row, score.size, samples_per_frame))
        values.append(score)
    pooled = np.concatenate([v[m] for v, m in zip(values, background, strict=True)]) if values else np.zeros(0)
    if pooled.size == 0:
        return [], {"threshold": None, "flagged_frames": 0, "runs": 0, "windows": 0}
    threshold = float(np.quantile(pooled, 1.0 - top_fraction))

    runs: list[tuple[int, int, int]] = []
    flagged_total = 0
    for row, score, keep in zip(rows, values, background, strict=True):
        flagged = np.flatnonzero(keep & (score >= threshold))
        if flagged.size == 0:
            continue
        flagged_total += int(flagged.size)
        length = store.length(row)
        allowed = class_runs(length, window, _recording_spans(store, row))[BACKGROUND]
        if not allowed:
            continue
        last = max(length - window, 0)
        centre = flagged * samples_per_frame + samples_per_frame // 2
        lo = np.clip(centre - window + margin, 0, last)
        hi = np.clip(centre - margin, 0, last) + 1  # exclusive
        for first, count in allowed:
            a = np.maximum(lo, first)
            b = np.minimum(hi, first + count)
            for start, stop in zip(a[b > a].tolist(), b[b > a].tolist(), strict=True):
                runs.append((row, start, stop - start))
    summary = {"threshold": threshold, "flagged_frames": flagged_total, "runs": len(runs),
               "windows": int(sum(count for _, _, count in runs))}
    return runs, summary
