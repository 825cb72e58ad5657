"""Hard background windows for the sampler: around the baseline's top-scoring background frames."""

from __future__ import annotations

import numpy as np
import pytest
from test_cache import FS, WINDOW, built  # noqa: F401  (the fixture)

from szflow.baseline import baseline_scores, fit_baseline, fit_baseline_with_scores
from szflow.cache import TrainingWindowSampler
from szflow.errors import SzflowError
from szflow.signal.labels import seizure_mask
from szflow.train.hard_negatives import hard_background_runs

RATE = 4.0


def _scores(store, bumps):
    """Low scores everywhere, 1.0 on the frames of `bumps` {recording_id: [(start_s, stop_s)]}."""
    scores = {}
    for rid in store.recording_ids:
        n = -(-store.length(store.row_of(rid)) // 64)
        s = np.full(n, 0.1, np.float32)
        s[np.arange(n) % 7 == 0] = 0.2  # some spread, so the quantile is not degenerate
        for a, b in bumps.get(rid, []):
            s[int(a * RATE):int(b * RATE)] = 1.0
        scores[rid] = s
    return scores


def test_runs_cover_the_flagged_frames_and_stay_background(built):  # noqa: F811
    store, _ = built
    # rec_c: 600 s, no seizure; rec_a: seizure 30-100 s, a bump at 110-112 s and one inside the seizure.
    bumps = {"rec_c": [(300.0, 302.0)], "rec_a": [(110.0, 112.0), (50.0, 52.0)]}
    scores = _scores(store, bumps)
    flagged = 16  # 8 frames of rec_c, 8 of rec_a outside its seizure (the seizure's own are excluded)
    total_background = sum(
        int((~seizure_mask(store.seizure_intervals(store.row_of(rid)), -(-store.length(store.row_of(rid)) // 64),
                           RATE).astype(bool)).sum()) for rid in store.recording_ids)
    runs, info = hard_background_runs(store, store.recording_ids, scores, window_s=60.0, frame_rate_hz=RATE,
                                      top_fraction=flagged / total_background, margin_s=5.0)
    assert 0.2 < info["threshold"] <= 1.0
    assert info["flagged_frames"] == flagged
    row_c, row_a = store.row_of("rec_c"), store.row_of("rec_a")
    labels = {row: store.labels(row) for row in (row_c, row_a)}
    for row, first, count in runs:
        assert row in (row_c, row_a)
        for start in (first, first + count - 1):
            window = slice(start, start + WINDOW)
            assert labels[row][window].sum() == 0  # background windows only
            # every start keeps a flagged frame >= 5 s inside the window
            flagged_s = 300.0 if row == row_c else 110.0
            assert start / FS <= flagged_s + 2.0 - 5.0 + 0.25 and start / FS + 60.0 >= flagged_s + 5.0 - 0.25
    # rec_a's background windows start at >= 100 s (after its seizure): the earlier starts are cut off.
    starts_a = {s for row, first, count in runs if row == row_a for s in range(first, first + count)}
    assert min(starts_a) == 100 * FS
    starts_c = {s for row, first, count in runs if row == row_c for s in range(first, first + count)}
    assert min(starts_c) == round((300.125 - 60.0 + 5.0) * FS)  # the first flagged frame's centre - 55 s
    assert max(starts_c) == round((301.875 - 5.0) * FS)  # the last flagged frame's centre - 5 s


def test_runs_feed_the_sampler(built):  # noqa: F811
    store, _ = built
    scores = _scores(store, {"rec_c": [(300.0, 302.0)]})
    runs, _ = hard_background_runs(store, store.recording_ids, scores, window_s=60.0, frame_rate_hz=RATE,
                                   top_fraction=0.001)  # ~4 of the bump's 8 frames
    sampler = TrainingWindowSampler(store, None, 60.0, 0.0, 0.0, 0.0, seed=0, num_windows=200,
                                    hard_background_weight=1.0, hard_background_runs=runs)
    for row, start in sampler:
        assert row == store.row_of("rec_c")
        assert start / FS <= 302.0 - 5.0 and (start + WINDOW) / FS >= 300.0 + 5.0  # the bump >= 5 s inside


def test_bad_inputs_are_clear_errors(built):  # noqa: F811
    store, _ = built
    scores = _scores(store, {})
    with pytest.raises(SzflowError, match="top_fraction"):
        hard_background_runs(store, store.recording_ids, scores, window_s=60.0, frame_rate_hz=RATE, top_fraction=0)
    del scores["rec_a"]
    with pytest.raises(SzflowError, match="no baseline scores for recording rec_a"):
        hard_background_runs(store, store.recording_ids, scores, window_s=60.0, frame_rate_hz=RATE,
                             top_fraction=0.1)


def test_fit_scores_are_the_baseline_scores(built):  # noqa: F811
    store, _ = built
    ids = store.recording_ids
    baseline, scores = fit_baseline_with_scores(store, ids, RATE)
    assert fit_baseline(store, ids, RATE) == baseline
    for rid in ids:
        signal = store.recording(store.row_of(rid)).x
        np.testing.assert_array_equal(scores[rid], baseline_scores(signal, baseline))
