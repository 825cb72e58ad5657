"""Post-processing (probabilities -> events), threshold sweeps, operating-point tuning, curves."""

from __future__ import annotations

import numpy as np
import pytest

from szflow.data.annotations import read_csv_bi, read_events_tsv, write_csv_bi, write_events_tsv
from szflow.errors import ConfigError, SzflowError
from szflow.postprocess import (
    PostprocessSettings,
    events_to_annotation,
    postprocess_settings,
    probs_to_events,
    smooth_probabilities,
    smoothing_window_frames,
)
from szflow.scoring import (
    ProbabilityTrack,
    RecordingEvents,
    auroc,
    pr_curve,
    roc_curve,
    score_ovlp,
    sweep_thresholds,
    tune_operating_points,
)


def _p(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Smoothing


def test_smoothing_window_is_seconds_rounded_to_odd_frames():
    assert smoothing_window_frames(0.0, 4.0) == 1
    assert smoothing_window_frames(1.0, 4.0) == 5  # 4 frames -> 5, so the window is centred
    assert smoothing_window_frames(2.0, 4.0) == 9
    assert smoothing_window_frames(2.0, 1.0) == 3
    assert smoothing_window_frames(1.0, 1.0) == 1


def test_moving_average_is_centred_and_edge_normalised():
    x = _p([0, 0, 0, 3, 0, 0, 0])
    y = smooth_probabilities(x, 1.0, 3.0)  # 3 frames at 1 Hz
    np.testing.assert_allclose(y, [0, 0, 1, 1, 1, 0, 0])
    # Edges average the frames that exist (no zero padding pulling them down).
    y = smooth_probabilities(_p([1, 1, 1, 1]), 1.0, 3.0)
    np.testing.assert_allclose(y, [1, 1, 1, 1])


def test_smoothing_is_zero_phase():
    x = np.zeros(101)
    x[40:61] = 1.0
    y = smooth_probabilities(x, 4.0, 2.0)
    np.testing.assert_allclose(y, y[::-1])  # symmetric input stays symmetric: no time shift


def test_smoothing_removes_a_short_spike_but_keeps_a_long_event():
    x = np.zeros(400)
    x[100] = 1.0  # one 0.25 s frame
    x[200:280] = 1.0  # 20 s
    events = probs_to_events(x, 4.0, smoothing_s=2.0, threshold=0.5)
    assert events == [(50.0, 70.0)]


# ---------------------------------------------------------------------------------------------
# Threshold, hysteresis, merge, minimum duration, clipping


def test_threshold_runs_in_seconds():
    x = _p([0, 0, 0.9, 0.9, 0.2, 0.6, 0])
    assert probs_to_events(x, 1.0, smoothing_s=0, threshold=0.5) == [(2.0, 4.0), (5.0, 6.0)]
    assert probs_to_events(x, 2.0, smoothing_s=0, threshold=0.5) == [(1.0, 2.0), (2.5, 3.0)]


def test_threshold_is_inclusive():
    assert probs_to_events(_p([0.5, 0.4]), 1.0, smoothing_s=0, threshold=0.5) == [(0.0, 1.0)]


def test_hysteresis_starts_above_threshold_and_continues_above_low():
    x = _p([0.1, 0.4, 0.8, 0.5, 0.4, 0.2, 0.45, 0.1])
    plain = probs_to_events(x, 1.0, smoothing_s=0, threshold=0.7)
    assert plain == [(2.0, 3.0)]
    hyst = probs_to_events(x, 1.0, smoothing_s=0, threshold=0.7, hysteresis_low=0.3)
    # Starts at the first frame >= 0.7 (not earlier when it rose above 0.3), ends when < 0.3.
    assert hyst == [(2.0, 5.0)]
    # A bump above low that never reaches the threshold is no event.
    assert probs_to_events(_p([0.4, 0.4, 0.1]), 1.0, smoothing_s=0, threshold=0.7, hysteresis_low=0.3) == []


def test_hysteresis_above_threshold_is_refused():
    with pytest.raises(ConfigError):
        probs_to_events(_p([0.5]), 1.0, smoothing_s=0, threshold=0.5, hysteresis_low=0.6)


def test_merge_gap_in_seconds():
    x = np.zeros(40)
    x[4:8] = 1.0  # 1-2 s at 4 Hz
    x[16:20] = 1.0  # 4-5 s: gap 2 s
    assert probs_to_events(x, 4.0, smoothing_s=0, threshold=0.5, merge_gap_s=2.0) == [(1.0, 2.0), (4.0, 5.0)]
    assert probs_to_events(x, 4.0, smoothing_s=0, threshold=0.5, merge_gap_s=2.01) == [(1.0, 5.0)]


def test_min_duration_in_seconds_at_any_frame_rate():
    for rate in (1.0, 4.0, 16.0):
        n = int(60 * rate)
        x = np.zeros(n)
        x[int(10 * rate):int(13 * rate)] = 1.0  # 3 s
        x[int(30 * rate):int(40 * rate)] = 1.0  # 10 s
        assert probs_to_events(x, rate, smoothing_s=0, threshold=0.5, min_duration_s=5.0) == [(30.0, 40.0)]
        # Exactly the minimum is kept.
        assert probs_to_events(x, rate, smoothing_s=0, threshold=0.5, min_duration_s=3.0) == \
            [(10.0, 13.0), (30.0, 40.0)]


def test_merge_happens_before_min_duration():
    x = np.zeros(20)
    x[2:4] = 1.0
    x[5:7] = 1.0  # two 2 s events 1 s apart at 1 Hz
    events = probs_to_events(x, 1.0, smoothing_s=0, threshold=0.5, merge_gap_s=2.0, min_duration_s=4.0)
    assert events == [(2.0, 7.0)]


def test_events_clipped_to_duration():
    x = np.ones(10)  # 10 frames at 1 Hz but the recording lasts 8.5 s
    assert probs_to_events(x, 1.0, smoothing_s=0, threshold=0.5, duration_s=8.5) == [(0.0, 8.5)]
    assert probs_to_events(x, 1.0, smoothing_s=0, threshold=0.5) == [(0.0, 10.0)]


def test_bad_probabilities_are_a_typed_error():
    with pytest.raises(SzflowError):
        probs_to_events(np.array([0.1, np.nan]), 1.0, smoothing_s=0, threshold=0.5)


def test_settings_from_settings_dict_and_operating_point():
    cfg = PostprocessSettings(smoothing_s=2.0, threshold=0.5, hysteresis_low=None, min_duration_s=5.0,
                              merge_gap_s=5.0)
    settings = postprocess_settings(cfg)
    assert set(settings) == {"smoothing_s", "threshold", "hysteresis_low", "min_duration_s", "merge_gap_s"}
    assert settings["threshold"] == cfg.threshold
    x = np.zeros(200)
    x[40:120] = 0.9
    assert probs_to_events(x, 4.0, **settings) == probs_to_events(
        x, 4.0, smoothing_s=cfg.smoothing_s, threshold=cfg.threshold, hysteresis_low=cfg.hysteresis_low,
        min_duration_s=cfg.min_duration_s, merge_gap_s=cfg.merge_gap_s)
    point = {**settings, "sensitivity": 0.5, "fa_per_24h": 3.0}
    assert PostprocessSettings.from_any(point) == PostprocessSettings.from_any(cfg)


def test_events_to_annotation_round_trips_through_files(tmp_path):
    events = [(12.25, 40.5), (100.0, 130.75)]
    ann = events_to_annotation("rec_s001_t000", events, 600.0)
    write_csv_bi(tmp_path / "rec_s001_t000.csv_bi", ann)
    write_events_tsv(tmp_path / "rec_s001_t000_events.tsv", ann)
    assert read_csv_bi(tmp_path / "rec_s001_t000.csv_bi").seizure_intervals() == events
    back = read_events_tsv(tmp_path / "rec_s001_t000_events.tsv")
    assert back.seizure_intervals() == events
    assert back.duration_s == 600.0


# ---------------------------------------------------------------------------------------------
# Sweeps and tuning


def _tracks(seed: int, n: int = 40, rates=(4.0,)) -> list[ProbabilityTrack]:
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n):
        rate = rates[i % len(rates)]
        duration = float(rng.uniform(300, 1800))
        frames = int(np.ceil(duration * rate))
        noise = np.convolve(rng.normal(0, 1, frames), np.ones(5) / 5, mode="same")
        p = 0.15 + 0.12 * noise
        reference = []
        for _ in range(int(rng.integers(0, 3))):
            start = float(rng.uniform(0, duration - 60))
            stop = start + float(rng.uniform(10, 60))
            reference.append((start, stop))
            p[int(start * rate):int(stop * rate)] += rng.uniform(0.2, 0.7)
        tracks.append(ProbabilityTrack(f"t{i:03d}", np.clip(p, 0, 1).astype(np.float32), rate, duration,
                                       sorted(reference)))
    return tracks


def _score_direct(tracks, **settings) -> dict:
    return score_ovlp([
        RecordingEvents(t.recording_id, t.duration_s, t.reference,
                        probs_to_events(t.probabilities, t.frame_rate_hz, duration_s=t.duration_s,
                                        **settings))
        for t in tracks
    ])


@pytest.mark.parametrize("settings", [
    {"smoothing_s": 0.0, "hysteresis_low": None, "min_duration_s": 0.0, "merge_gap_s": 0.0},
    {"smoothing_s": 2.0, "hysteresis_low": None, "min_duration_s": 5.0, "merge_gap_s": 10.0},
    {"smoothing_s": 1.0, "hysteresis_low": 0.25, "min_duration_s": 2.0, "merge_gap_s": 3.0},
])
def test_sweep_equals_scoring_each_threshold(settings):
    tracks = _tracks(0, rates=(4.0, 1.0, 256.0 / 64))
    thresholds = [0.9, 0.1, 0.2, 0.3, 0.35, 0.5, 0.7, 0.5]  # unsorted, with a duplicate
    rows = sweep_thresholds(tracks, thresholds, {**settings, "threshold": 0.5})
    assert [row["threshold"] for row in rows] == thresholds
    for row in rows:
        low = settings["hysteresis_low"]
        direct = _score_direct(tracks, **{**settings, "threshold": row["threshold"],
                                          "hysteresis_low": low if low is not None and low < row["threshold"]
                                          else None})
        assert (row["tp"], row["fp"], row["fn"]) == (direct["tp"], direct["fp"], direct["fn"])
        assert row["sensitivity"] == direct["sensitivity"]
        assert row["fa_per_24h"] == pytest.approx(direct["fa_per_24h"])


def test_sweep_is_monotone_in_false_alarms_without_merging():
    rows = sweep_thresholds(_tracks(1), [0.2, 0.4, 0.6, 0.8], PostprocessSettings())
    # Raising the threshold can only remove seizure frames: never more detected seizures.
    tps = [row["tp"] for row in rows]
    assert tps == sorted(tps, reverse=True)


def test_tuning_meets_each_target_with_the_most_sensitive_setting():
    tracks = _tracks(2, n=60)
    targets = [50, 10, 2.5]
    grid = {"threshold_grid": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "smoothing_grid_s": [0.0, 2.0],
            "min_duration_grid_s": [0.0, 5.0], "merge_gap_grid_s": [0.0, 10.0],
            "hysteresis_low_grid": [None, 0.25, 0.45]}
    points = tune_operating_points(tracks, targets, **grid)
    assert list(points) == ["50", "10", "2.5"]  # string keys, never floats
    # Brute force over the same grid with the one-recording-at-a-time path.
    everything = []
    for smoothing in grid["smoothing_grid_s"]:
        for low in grid["hysteresis_low_grid"]:
            for threshold in grid["threshold_grid"]:
                if low is not None and low >= threshold:
                    continue
                for min_duration in grid["min_duration_grid_s"]:
                    for merge in grid["merge_gap_grid_s"]:
                        result = _score_direct(tracks, smoothing_s=smoothing, threshold=threshold,
                                               hysteresis_low=low, min_duration_s=min_duration,
                                               merge_gap_s=merge)
                        everything.append(result)
    for key, target in zip(points, targets):
        point = points[key]
        assert point["feasible"]
        assert point["fa_per_24h"] <= target
        best = max(r["sensitivity"] for r in everything if r["fa_per_24h"] <= target)
        assert point["sensitivity"] == best
        # Its settings reproduce its numbers.
        again = _score_direct(tracks, **{k: point[k] for k in ("smoothing_s", "threshold", "hysteresis_low",
                                                               "min_duration_s", "merge_gap_s")})
        assert (again["tp"], again["fp"]) == (point["tp"], point["fp"])


def test_tuning_picks_hysteresis_when_it_rescues_a_seizure():
    # A short seizure that crosses 0.9 for 3 s and stays above 0.6 for 12 s after that; a 5 s false
    # bump at 0.95. With a 10 s minimum duration only hysteresis (0.6, which extends an event forward
    # from its crossing) keeps the seizure, and the bump stays too short to count.
    rate = 1.0
    p = np.zeros(3600)
    p[100:115] = 0.7
    p[101:104] = 0.95
    p[2000:2005] = 0.95
    track = ProbabilityTrack("r", p, rate, 3600.0, [(100.0, 115.0)])
    common = {"threshold_grid": [0.9], "min_duration_grid_s": [10.0]}
    without = tune_operating_points([track], [1], **common)
    assert without["1"]["sensitivity"] == 0.0
    points = tune_operating_points([track], [1], hysteresis_low_grid=[None, 0.6], **common)
    assert points["1"]["hysteresis_low"] == 0.6
    assert (points["1"]["sensitivity"], points["1"]["fp"]) == (1.0, 0)
    # A low at or above the threshold is no hysteresis: reported as None, never scored twice.
    same = tune_operating_points([track], [1], hysteresis_low_grid=[0.95], **common)
    assert same["1"]["hysteresis_low"] is None and same["1"]["sensitivity"] == 0.0


def test_tuning_prefers_lower_false_alarms_on_equal_sensitivity():
    # One recording, one seizure at 100-200 s; a false bump that a high threshold removes.
    rate = 1.0
    p = np.zeros(3600)
    p[100:200] = 0.9
    p[1000:1010] = 0.5
    track = ProbabilityTrack("r", p, rate, 3600.0, [(100.0, 200.0)])
    points = tune_operating_points([track], [100], threshold_grid=[0.4, 0.6])
    assert points["100"]["threshold"] == 0.6
    assert points["100"]["fa_per_24h"] == 0.0
    assert points["100"]["sensitivity"] == 1.0


def test_tuning_reports_an_unreachable_target():
    p = np.full(3600, 0.9)
    p[::2] = 0.0  # flickering: many events at every threshold
    track = ProbabilityTrack("r", p, 1.0, 3600.0, [(10.0, 20.0)])
    points = tune_operating_points([track], [1], threshold_grid=[0.5])
    assert points["1"]["feasible"] is False


def test_sweep_without_tracks_is_a_typed_error():
    with pytest.raises(SzflowError):
        sweep_thresholds([], [0.5], None)


# ---------------------------------------------------------------------------------------------
# Curves


def _labelled_track(scores_seizure, scores_background, rate=1.0):
    p = np.concatenate([scores_background, scores_seizure]).astype(np.float32)
    start = len(scores_background) / rate
    return ProbabilityTrack("c", p, rate, len(p) / rate, [(start, len(p) / rate)])


def test_auroc_perfect_reversed_and_tied():
    assert auroc([_labelled_track(np.full(10, 0.9), np.full(30, 0.1))]) == pytest.approx(1.0)
    assert auroc([_labelled_track(np.full(10, 0.1), np.full(30, 0.9))]) == pytest.approx(0.0)
    assert auroc([_labelled_track(np.full(10, 0.5), np.full(30, 0.5))]) == pytest.approx(0.5)


def test_auroc_matches_rank_statistic():
    rng = np.random.default_rng(3)
    pos, neg = rng.uniform(0.3, 1.0, 200), rng.uniform(0.0, 0.7, 500)
    pos32, neg32 = pos.astype(np.float32), neg.astype(np.float32)  # as a track stores them
    track = _labelled_track(pos32, neg32)
    # Mann-Whitney: probability that a random positive scores above a random negative (ties half).
    expected = ((pos32[:, None] > neg32[None, :]).mean() + 0.5 * (pos32[:, None] == neg32[None, :]).mean())
    assert auroc([track]) == pytest.approx(expected)


def test_auroc_without_positives_is_nan():
    track = ProbabilityTrack("n", np.full(10, 0.2, np.float32), 1.0, 10.0, [])
    assert np.isnan(auroc([track]))


def test_roc_and_pr_curves():
    tracks = _tracks(4, n=10)
    fpr, tpr, thresholds = roc_curve(tracks)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == pytest.approx(1) and tpr[-1] == pytest.approx(1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thresholds[1:]) < 0)
    precision, recall, _ = pr_curve(tracks)
    assert recall[0] == 0 and recall[-1] == pytest.approx(1)
    assert np.all((precision >= 0) & (precision <= 1))
