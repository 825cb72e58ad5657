"""Intervals on the reported rates, certification of operating points, SzCORE averaged per subject."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import binom, poisson
from timescoring import scoring as ts_scoring
from timescoring.annotations import Annotation

from szflow.evaluate import certification, headline, split_report
from szflow.scoring import ProbabilityTrack, RecordingEvents, score_corpus, tune_operating_points
from szflow.scoring.intervals import (
    BOOTSTRAP_RESAMPLES,
    bootstrap_ratio_interval,
    certification_hours,
    certifies,
    fa_dispersion,
    fa_interval,
    fa_prediction_interval,
    format_certification_hours,
    hours_to_certify,
    poisson_count_interval,
    subject_of,
)
from szflow.scoring.szcore import TIMESCORING_VERSION, score_szcore_event_per_subject


@pytest.mark.parametrize("count", [0, 1, 2, 5, 10, 37])
def test_poisson_interval_is_the_exact_garwood_interval(count):
    low, high = poisson_count_interval(count)
    # Exact: the upper mean leaves 2.5 % below the observed count, the lower mean 2.5 % above it.
    assert poisson.cdf(count, high) == pytest.approx(0.025, abs=1e-9)
    if count == 0:
        assert low == 0.0
    else:
        assert poisson.sf(count - 1, low) == pytest.approx(0.025, abs=1e-9)


def test_poisson_interval_matches_published_values():
    # Garwood (1936) / standard tables of the exact 95 % Poisson interval.
    assert poisson_count_interval(0) == pytest.approx((0.0, 3.6889), abs=1e-4)
    assert poisson_count_interval(1) == pytest.approx((0.0253, 5.5716), abs=1e-4)
    assert poisson_count_interval(10) == pytest.approx((4.7954, 18.3904), abs=1e-4)


def test_fa_interval_scales_to_24_hours():
    # Zero false alarms in 18.9 h: up to 4.68 per 24 h; in 24 h exactly the count interval.
    assert fa_interval(0, 18.9 * 3600)[1] == pytest.approx(3.6889 * 24 / 18.9, abs=1e-3)
    assert fa_interval(10, 86_400.0) == pytest.approx(list(poisson_count_interval(10)))


def test_dispersion_is_the_cluster_size_index_of_the_patients_false_alarms():
    assert fa_dispersion([]) == 1.0 and fa_dispersion([0, 0]) == 1.0
    assert fa_dispersion([1, 1, 1, 0]) == 1.0       # one false alarm per patient: no clustering
    assert fa_dispersion([3, 0]) == 3.0             # all in one patient
    assert fa_dispersion([2, 1, 1, 1]) == pytest.approx(7 / 5)


def test_prediction_with_no_false_alarm_has_a_closed_form():
    # x = 0, the same hours: P(Y = y | n = y) = 0.5^y reaches 2.5 % at y = log(0.025) / log(0.5).
    events = math.log(0.025) / math.log(0.5)
    assert fa_prediction_interval(0, 86_400.0) == pytest.approx([0.0, events], abs=1e-6)
    assert hours_to_certify(2.5) == pytest.approx(events / 2.5 * 24)
    assert hours_to_certify(1.0) == pytest.approx(127.73, abs=0.01)
    # Twice the new split's hours: the 24 h of the new split are a third of all hours.
    assert fa_prediction_interval(0, 2 * 86_400.0, 86_400.0)[1] == pytest.approx(
        math.log(0.025) / math.log(1 / 3), abs=1e-6)


@pytest.mark.parametrize(("count", "ratio"), [(1, 1.0), (3, 1.0), (7, 0.5), (12, 2.0)])
def test_prediction_ends_fall_between_the_exact_binomial_crossings(count, ratio):
    # At whole counts the continuous ends are the conditional binomial test's: P(X <= x | x + y) is
    # still >= 2.5 % at the last whole y inside the upper end and below it one further.
    hours = 20.0
    low, high = fa_prediction_interval(count, hours * 3600, ratio * hours * 3600)
    share = 1 / (1 + ratio)
    per_day = ratio * hours / 24
    y_high, y_low = high * per_day, low * per_day
    top = math.floor(y_high)
    assert binom.cdf(count, count + top, share) >= 0.025 > binom.cdf(count, count + top + 1, share)
    if y_low > 0:
        bottom = math.ceil(y_low)
        assert binom.sf(count - 1, count + bottom, share) >= 0.025 > binom.sf(count - 1, count + bottom - 1, share)
    assert low <= count / hours * 24 <= high


def test_prediction_covers_new_clustered_splits():
    # Splits of 100 patients whose false alarms come in clusters (Poisson many, geometric sizes):
    # a second split's count lies within the first's prediction about 95 % of the time when the
    # dispersion is taken into account, and far less often when clustering is ignored.
    rng = np.random.default_rng(7)

    def split() -> np.ndarray:
        clusters = rng.poisson(6 / 100, size=100)
        return np.array([rng.geometric(1 / 3, size=k).sum() if k else 0 for k in clusters])

    with_dispersion = without = 0
    trials = 600
    for _ in range(trials):
        first, second = split(), split()
        low, high = fa_prediction_interval(first.sum(), 86_400.0, 86_400.0, fa_dispersion(first))
        with_dispersion += low <= second.sum() <= high
        low, high = fa_prediction_interval(first.sum(), 86_400.0, 86_400.0)
        without += low <= second.sum() <= high
    assert with_dispersion / trials >= 0.9
    assert without / trials < with_dispersion / trials - 0.05
    assert certifies(0, 51.2 * 3600, 2.5) and not certifies(0, 51.0 * 3600, 2.5)


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 4, size=40)
    hits = np.minimum(targets, rng.integers(0, 4, size=40))
    first = bootstrap_ratio_interval(hits, targets)
    assert first == bootstrap_ratio_interval(hits, targets)  # same seed, same interval
    assert first != bootstrap_ratio_interval(hits, targets, seed=1)
    estimate = hits.sum() / targets.sum()
    assert 0.0 <= first[0] <= estimate <= first[1] <= 1.0
    assert BOOTSTRAP_RESAMPLES >= 1000
    assert bootstrap_ratio_interval([0, 0], [0, 0]) is None


def _flat_track(recording_id: str, hours: float, bumps: list[int], bump_p: float = 0.9) -> ProbabilityTrack:
    """A 1 Hz track with one seizure (p 0.95) and a 30 s false bump (p `bump_p`) starting at each
    second in `bumps`."""
    n = int(hours * 3600)
    p = np.zeros(n)
    p[100:200] = 0.95
    for start in bumps:
        p[start:start + 30] = bump_p
    return ProbabilityTrack(recording_id, p, 1.0, float(n), [(100.0, 200.0)])


def test_certification_refuses_a_target_the_hours_cannot_support():
    # 2 h without a single false alarm: the prediction reaches 64 per 24 h, so 10/24h is not certified,
    # and the point says how many hours it would take.
    tracks = [_flat_track("a_s001_t000", 1.0, []), _flat_track("b_s001_t000", 1.0, [])]
    points = tune_operating_points(tracks, [10], threshold_grid=[0.5, 0.92], certify=True)
    point = points["10"]
    assert point["feasible"] is False and point["certified"] is False
    assert point["fp"] == 0
    assert point["hours_scored"] == pytest.approx(2.0)
    assert point["hours_needed"] == pytest.approx(hours_to_certify(10.0))
    assert point["fa_per_24h_interval"][1] > 10.0
    # Observed <= target alone would have accepted it.
    assert tune_operating_points(tracks, [10], threshold_grid=[0.5, 0.92])["10"]["feasible"] is True


@pytest.mark.parametrize(("bump_patients", "certified_threshold"), [((0, 1, 2), 0.5), ((0, 0, 0), 0.99)])
def test_certification_keeps_the_best_point_whose_prediction_meets_the_target(bump_patients, certified_threshold):
    # 40 h, 20 patients; threshold 0.5 finds every seizure and 3 false bumps, 0.99 finds nothing.
    # Three bumps in three patients (dispersion 1): the prediction for 40 new hours reaches 6.8/24h,
    # 0.5 certifies 10. The same three in one patient (dispersion 3): 13.6/24h, so only 0.99 does
    # (0 false alarms: 3.2/24h, which also certifies 5).
    bumps = {i: [] for i in range(20)}
    for k, patient in enumerate(bump_patients):
        bumps[patient].append(3000 + 1000 * k)
    tracks = [_flat_track(f"p{i}_s001_t000", 2.0, bumps[i], bump_p=0.97) for i in range(20)]
    points = tune_operating_points(tracks, [10, 5], threshold_grid=[0.5, 0.99], certify=True)
    ten = points["10"]
    assert ten["certified"] and ten["threshold"] == certified_threshold
    assert ten["fa_per_24h_predicted"][1] <= 10.0
    sweep = tune_operating_points(tracks, [100], threshold_grid=[0.5], certify=True)["100"]
    assert sweep["fp"] == 3 and sweep["fa_dispersion"] == pytest.approx(len(bump_patients) / len(set(bump_patients)))
    assert sweep["fa_per_24h_predicted"][1] == pytest.approx(6.8 if len(set(bump_patients)) == 3 else 13.6, abs=0.1)
    assert points["5"]["certified"] and points["5"]["threshold"] == 0.99 and points["5"]["fp"] == 0


def test_between_split_dispersion_widens_the_prediction_like_clustering_does():
    # Three false bumps in three patients certify 10/24h at 0.5 on their own (previous test); a
    # between-split dispersion of 3 counts them as the one-patient case does (13.6/24h predicted),
    # so only 0.99 certifies 10, and every target needs three times the hours.
    bumps = {i: [] for i in range(20)}
    for k in range(3):
        bumps[k].append(3000 + 1000 * k)
    tracks = [_flat_track(f"p{i}_s001_t000", 2.0, bumps[i], bump_p=0.97) for i in range(20)]
    plain = tune_operating_points(tracks, [10], threshold_grid=[0.5, 0.99], certify=True)["10"]
    wide = tune_operating_points(tracks, [10], threshold_grid=[0.5, 0.99], certify=True,
                                 between_split_dispersion=3.0)["10"]
    assert plain["threshold"] == 0.5 and plain["between_split_dispersion"] == 1.0
    assert wide["certified"] and wide["threshold"] == 0.99 and wide["between_split_dispersion"] == 3.0
    assert wide["hours_needed"] == pytest.approx(3 * hours_to_certify(10.0))
    at_half = tune_operating_points(tracks, [100], threshold_grid=[0.5], certify=True,
                                    between_split_dispersion=3.0)["100"]
    assert at_half["fa_dispersion"] == pytest.approx(1.0)
    assert at_half["fa_per_24h_predicted"][1] == pytest.approx(13.6, abs=0.1)


def test_eval_states_dev_prediction_with_the_points_between_split_dispersion():
    point = {"fp": 4, "fa_dispersion": 1.5, "hours_scored": 60.0, "between_split_dispersion": 2.0,
             "certified": True}
    stated = certification("10", point, duration_s=40 * 3600.0, false_alarms=9)
    expected = fa_prediction_interval(4, 60 * 3600.0, 40 * 3600.0, 3.0)
    assert stated["fa_per_24h_predicted"] == pytest.approx(expected)
    assert stated["between_split_dispersion"] == 2.0
    assert stated["fa_within_prediction"] == (expected[0] <= 9 / 40 * 24 <= expected[1])
    # Without the factor (a points file from before it) the prediction is the narrower one.
    narrow = certification("10", {k: v for k, v in point.items() if k != "between_split_dispersion"},
                           duration_s=40 * 3600.0)["fa_per_24h_predicted"]
    assert narrow[1] < expected[1]


def _recording(rid: str, duration: float, ref, hyp) -> RecordingEvents:
    return RecordingEvents(rid, duration, list(ref), list(hyp))


RECORDINGS = [
    _recording("s1_s001_t000", 3600.0, [(100, 160), (2000, 2100)], [(110, 150), (3000, 3050)]),
    _recording("s1_s001_t001", 1800.0, [(500, 560)], []),
    _recording("s2_s001_t000", 3600.0, [], [(10, 40), (1000, 1100)]),   # no seizures: no sensitivity
    _recording("s3_s002_t000", 3000.0, [(700, 760)], [(690, 770)]),
    _recording("s4_s001_t000", 3000.0, [], []),                           # nothing at all: no F1
]


def _direct_per_subject() -> dict:
    """timescoring called per recording, counts summed per subject, its own computeScores, then a
    NaN-mean over subjects."""
    per_subject: dict[str, list] = {}
    for rec in RECORDINGS:
        n = math.ceil(rec.duration_s)
        score = ts_scoring.EventScoring(Annotation(rec.reference, 1, n), Annotation(rec.hypothesis, 1, n))
        totals = per_subject.setdefault(subject_of(rec.recording_id), [0, 0, 0, 0])
        totals[0] += score.refTrue
        totals[1] += score.tp
        totals[2] += score.fp
        totals[3] += n
    rows = []
    for ref_true, tp, fp, samples in per_subject.values():
        summed = SimpleNamespace(refTrue=ref_true, tp=tp, fp=fp, numSamples=samples, fs=1)
        ts_scoring._Scoring.computeScores(summed)
        rows.append([summed.sensitivity, summed.precision, summed.f1, summed.fpRate])
    table = np.array(rows, dtype=float)
    return dict(zip(("sensitivity", "precision", "f1", "fa_per_24h"), np.nanmean(table, axis=0)))


def test_szcore_per_subject_matches_timescoring_called_directly():
    subjects: dict[str, list] = {}
    for rec in RECORDINGS:
        subjects.setdefault(subject_of(rec.recording_id), []).append(rec)
    ours = score_szcore_event_per_subject(subjects)
    assert ours["subjects"] == 4
    for key, value in _direct_per_subject().items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert TIMESCORING_VERSION == "0.0.7"


def test_score_corpus_carries_intervals_and_both_averagings():
    result = score_corpus(RECORDINGS)
    assert result["subjects"] == 4 and result["timescoring_version"] == TIMESCORING_VERSION
    ovlp = result["ovlp"]
    assert ovlp["fa_per_24h_interval"] == pytest.approx(fa_interval(ovlp["fp"], result["duration_s"]))
    low, high = ovlp["sensitivity_interval"]
    assert low <= ovlp["sensitivity"] <= high
    assert "fa_per_24h_interval" in result["szcore_event"]
    assert result["szcore_event_subject_mean"]["f1"] is not None
    assert "patient-level" in result["intervals"]["sensitivity"]


def test_headline_is_small_and_names_its_averaging():
    tracks = [_flat_track(f"p{i}_s001_t000", 2.0, [3000] if i == 0 else []) for i in range(10)]
    points = tune_operating_points(tracks, [10, 5], threshold_grid=[0.5, 0.92], certify=True)
    report = split_report("dev", tracks, tracks, points, points, SimpleNamespace(step=3))
    assert report["operating_points"]["10"]["certification"]["certified"] is True
    certified = {key: point["certification"]["certified"] for key, point in report["operating_points"].items()}
    assert headline(report) == {"dev": {f"fa{key}_certified": value for key, value in certified.items()}}
    scored = {**report, "split": "eval"}
    small = headline(scored)["eval"]
    assert set(small) == {"auroc", "fa10", "fa5", "szcore_f1_subject_mean_fa10", "baseline_sens_pooled_fa10"}
    assert set(small["fa10"]) == {"sens_pooled", "fa_24h"}


def test_certification_hours_compare_the_split_with_what_each_target_needs():
    table = certification_hours({"dev": 20.0, "eval": 130.0}, [10, 1])
    assert table["dev"]["10"]["enough"] and not table["dev"]["1"]["enough"]
    assert table["eval"]["1"]["enough"]
    assert table["dev"]["1"]["hours_needed"] == pytest.approx(hours_to_certify(1.0))
    assert "1/24h needs 127.7 h (too few)" in format_certification_hours(table)
    wide = certification_hours({"dev": 60.0}, [2.5], between_split_dispersion=2.0)
    assert wide["dev"]["2.5"]["hours_needed"] == pytest.approx(2 * hours_to_certify(2.5))
    assert not wide["dev"]["2.5"]["enough"]
    assert "2.5/24h needs 102.2 h (too few)" in format_certification_hours(wide)
    assert "between-split dispersion 2" in format_certification_hours(wide)
