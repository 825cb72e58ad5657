"""Scoring: SzCORE through timescoring, OVLP/TAES properties, corpus sums, folders and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timescoring import scoring as ts_scoring
from timescoring.annotations import Annotation as TsAnnotation
from typer.testing import CliRunner

from szflow.cli import app
from szflow.data.annotations import Annotation, Event, write_csv_bi, write_events_tsv
from szflow.errors import SzflowError
from szflow.scoring import (
    RecordingEvents,
    format_score_table,
    ovlp_counts,
    score_corpus,
    score_folders,
    score_ovlp,
    score_szcore_event,
    score_szcore_sample,
    taes_counts,
)
from szflow.scoring.events import prepare
from szflow.scoring.szcore import SZCORE, label_samples

# ---------------------------------------------------------------------------------------------
# Helpers


def _disjoint(rng: np.random.Generator, duration: float, count: int, grid: float | None,
              max_len: float = 400.0) -> list[tuple[float, float]]:
    """Sorted, non-overlapping random intervals (touching allowed), optionally on a time grid."""
    spans = []
    for _ in range(count):
        start = float(rng.uniform(0, max(duration - 1, 0)))
        stop = min(duration, start + float(rng.uniform(0.5, max_len)))
        if grid:
            start, stop = round(start / grid) * grid, round(stop / grid) * grid
        if stop > start:
            spans.append((start, stop))
    spans.sort()
    out: list[tuple[float, float]] = []
    for start, stop in spans:
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _corpus(seed: int, n: int = 120, grid: float | None = None) -> list[RecordingEvents]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        duration = float(rng.integers(600, 3601)) if i % 2 else float(rng.uniform(600, 3600))
        if grid:
            duration = round(duration / grid) * grid
        recs.append(RecordingEvents(
            f"rec{i:04d}", duration,
            _disjoint(rng, duration, int(rng.integers(0, 4)), grid),
            _disjoint(rng, duration, int(rng.integers(0, 6)), grid),
        ))
    return recs


def _timescoring_per_file(recs, fs=1, params=None):
    """timescoring called the plain way: one call per recording, counts summed."""
    params = params or SZCORE.timescoring()
    event = [0, 0, 0]
    sample = [0, 0, 0]
    for rec in prepare(recs):
        n = label_samples(rec.duration_s, fs)
        ref, hyp = TsAnnotation(list(rec.reference), fs, n), TsAnnotation(list(rec.hypothesis), fs, n)
        e = ts_scoring.EventScoring(ref, hyp, params)
        s = ts_scoring.SampleScoring(ref, hyp, fs)
        event = [event[0] + e.refTrue, event[1] + e.tp, event[2] + e.fp]
        sample = [sample[0] + int(s.refTrue), sample[1] + int(s.tp), sample[2] + int(s.fp)]
    return event, sample


# ---------------------------------------------------------------------------------------------
# SzCORE goes through timescoring


@pytest.mark.parametrize("seed,grid", [(0, None), (1, 0.25), (2, 1.0), (3, None)])
def test_szcore_matches_timescoring_per_file(seed, grid):
    recs = _corpus(seed, grid=grid)
    event, sample = _timescoring_per_file(recs)
    ours_event, ours_sample = score_szcore_event(recs), score_szcore_sample(recs)
    assert [ours_event["targets"], ours_event["tp"], ours_event["fp"]] == event
    assert [ours_sample["targets"], ours_sample["tp"], ours_sample["fp"]] == sample
    # And our own per-file path is the same calls.
    assert score_szcore_event(recs, per_file=True) == ours_event
    assert score_szcore_sample(recs, per_file=True) == ours_sample


def test_szcore_single_recording_ratios_equal_timescoring():
    rec = RecordingEvents("r", 3600.0, [(100.0, 160.0), (1000.0, 1400.0), (2000.0, 2030.0)],
                          [(90.0, 120.0), (1100.0, 1150.0), (2500.0, 2510.0), (2600.0, 2610.0)])
    ref = TsAnnotation(rec.reference, 1, 3600)
    hyp = TsAnnotation(rec.hypothesis, 1, 3600)
    direct = ts_scoring.EventScoring(ref, hyp, SZCORE.timescoring())
    ours = score_szcore_event([rec])
    assert (ours["targets"], ours["tp"], ours["fp"]) == (direct.refTrue, direct.tp, direct.fp)
    assert ours["sensitivity"] == pytest.approx(direct.sensitivity)
    assert ours["precision"] == pytest.approx(direct.precision)
    assert ours["f1"] == pytest.approx(direct.f1)
    assert ours["fa_per_24h"] == pytest.approx(direct.fpRate)  # 3600 labelled samples = the duration
    direct_sample = ts_scoring.SampleScoring(ref, hyp, 1)
    ours_sample = score_szcore_sample([rec])
    assert ours_sample["sensitivity"] == pytest.approx(direct_sample.sensitivity)
    assert ours_sample["f1"] == pytest.approx(direct_sample.f1)


def test_szcore_parameters_are_the_published_ones():
    params = SZCORE.timescoring()
    assert (params.toleranceStart, params.toleranceEnd, params.minOverlap) == (30, 60, 0)
    assert (params.minDurationBetweenEvents, params.maxEventDuration) == (90, 300)


def test_szcore_merges_close_events_and_splits_long_ones():
    # Two hypotheses 60 s apart are one event; a 12 min reference is three (5 + 5 + 2 min).
    rec = RecordingEvents("r", 3600.0, [(600.0, 1320.0)], [(2000.0, 2010.0), (2070.0, 2080.0)])
    result = score_szcore_event([rec])
    assert result["targets"] == 3
    assert result["fp"] == 1


@pytest.mark.parametrize("seed", [4, 5])
def test_ovlp_counts_equal_timescoring_with_zero_tolerances(seed):
    # Events on a 0.5 s grid are exact at timescoring's 10 Hz; with no tolerance, no merging and
    # no splitting its event scoring is any-overlap scoring.
    params = ts_scoring.EventScoring.Parameters(toleranceStart=0, toleranceEnd=0, minOverlap=0,
                                                maxEventDuration=math.inf, minDurationBetweenEvents=0)
    recs = _corpus(seed, grid=0.5)
    event, _ = _timescoring_per_file(recs, params=params)
    ovlp = score_ovlp(recs)
    assert [ovlp["targets"], ovlp["tp"], ovlp["fp"]] == event


# ---------------------------------------------------------------------------------------------
# Corpus sums


def test_fa_per_24h_sums_durations_over_recordings():
    recs = [
        RecordingEvents("a", 3600.0, [], [(10.0, 20.0)]),
        RecordingEvents("b", 7200.0, [], [(10.0, 20.0), (300.0, 310.0)]),  # > 90 s apart: SzCORE keeps two
        RecordingEvents("c", 75600.0, [], []),
    ]
    result = score_corpus(recs)
    assert result["duration_s"] == 86400.0
    assert result["recordings"] == 3
    # 3 false alarms in 24 h of recordings: 3 per 24 h, not an average of per-file rates.
    assert result["ovlp"]["fa_per_24h"] == pytest.approx(3.0)
    assert result["taes"]["fa_per_24h"] == pytest.approx(3.0)
    assert result["szcore_event"]["fa_per_24h"] == pytest.approx(3.0)


def test_recording_without_seizures():
    rec = RecordingEvents("quiet", 1800.0, [], [])
    result = score_corpus([rec])
    for key in ("ovlp", "taes", "szcore_event", "szcore_sample"):
        assert result[key]["tp"] == 0
        assert result[key]["fp"] == 0
        assert result[key]["fn"] == 0
        assert result[key]["fa_per_24h"] == 0.0
    # NEDC prints 0 % for no targets; timescoring's undefined ratios are None (JSON null), not NaN.
    assert result["ovlp"]["sensitivity"] == 0.0
    assert result["szcore_event"]["sensitivity"] is None
    json.dumps(result, allow_nan=False)


def test_false_alarm_in_a_seizure_free_recording_counts_everywhere():
    result = score_corpus([RecordingEvents("fa", 600.0, [], [(100.0, 200.0)])])
    assert result["ovlp"]["fp"] == 1
    assert result["taes"]["fp"] == 1.0
    assert result["szcore_event"]["fp"] == 1
    assert result["szcore_sample"]["fp"] == 100


def test_events_are_clipped_to_the_recording():
    rec = RecordingEvents("r", 600.0, [(550.0, 650.0)], [(-10.0, 5.0), (590.0, 700.0), (700.0, 800.0)])
    result = score_ovlp([rec])
    # (700, 800) lies after the end: not time of this recording, not a false alarm.
    assert (result["tp"], result["fp"]) == (1, 1)


def test_bad_interval_is_a_typed_error():
    with pytest.raises(SzflowError, match="ends before it starts"):
        score_ovlp([RecordingEvents("r", 600.0, [(20.0, 10.0)], [])])


def test_result_has_no_float_keys():
    result = score_corpus(_corpus(6, n=10))

    def keys(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                assert isinstance(key, str)
                keys(value)

    keys(result)


# ---------------------------------------------------------------------------------------------
# Properties

_times = st.floats(min_value=0.0, max_value=600.0, allow_nan=False, allow_infinity=False)
_interval = st.tuples(_times, _times).map(lambda t: (min(t), max(t)))
_intervals = st.lists(_interval, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref=_intervals, hyp=_intervals)
def test_ovlp_vectorised_equals_definition(ref, hyp):
    rec = prepare([RecordingEvents("r", 600.0, ref, hyp)])[0]
    hits, misses, fas = ovlp_counts(rec.reference, rec.hypothesis)
    result = score_ovlp([RecordingEvents("r", 600.0, ref, hyp)])
    assert (result["tp"], result["fn"], result["fp"]) == (hits, misses, fas)
    assert result["tp"] + result["fn"] == len(rec.reference) == result["targets"]


@settings(max_examples=150, deadline=None)
@given(ref=_intervals, hyp=_intervals)
def test_taes_accounts_for_every_reference(ref, hyp):
    rec = prepare([RecordingEvents("r", 600.0, ref, hyp)])[0]
    hit, miss, fa = taes_counts(rec.reference, rec.hypothesis)
    assert hit + miss == pytest.approx(len(rec.reference))
    assert hit >= -1e-9 and fa >= -1e-9


@st.composite
def _disjoint_events(draw):
    cuts = sorted(set(draw(st.lists(st.integers(0, 3600), min_size=0, max_size=12))))
    pairs = [(float(cuts[i]), float(cuts[i + 1])) for i in range(0, len(cuts) - 1, 2)]
    return pairs


@settings(max_examples=80, deadline=None)
@given(events=_disjoint_events())
def test_perfect_hypothesis(events):
    result = score_corpus([RecordingEvents("r", 3600.0, events, list(events))])
    for key in ("ovlp", "taes", "szcore_event"):
        assert result[key]["fp"] == 0
        assert result[key]["fa_per_24h"] == 0.0
        if events:
            assert result[key]["sensitivity"] == pytest.approx(1.0)
    assert result["szcore_sample"]["fp"] == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_szcore_layout_equals_per_file_on_random_corpora(seed):
    recs = _corpus(seed, n=12, grid=None if seed % 2 else 0.1)
    assert score_szcore_event(recs) == score_szcore_event(recs, per_file=True)
    assert score_szcore_sample(recs) == score_szcore_sample(recs, per_file=True)


# ---------------------------------------------------------------------------------------------
# Folders and the CLI


def _write_pair(ref_dir, hyp_dir, name, duration, ref, hyp, fmt="csv_bi"):
    ref_ann = Annotation(name, duration, [Event(a, b) for a, b in ref])
    hyp_ann = Annotation(name, duration, [Event(a, b) for a, b in hyp])
    if fmt == "csv_bi":
        write_csv_bi(ref_dir / f"{name}.csv_bi", ref_ann)
        write_csv_bi(hyp_dir / f"{name}.csv_bi", hyp_ann)
    else:
        write_events_tsv(ref_dir / f"{name}_events.tsv", ref_ann)
        write_events_tsv(hyp_dir / f"{name}_events.tsv", hyp_ann)


@pytest.fixture
def folders(tmp_path):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    _write_pair(ref, hyp, "aaaaaaaa_s001_t000", 600.0, [(100.0, 200.0)], [(120.0, 150.0)])
    _write_pair(ref, hyp, "aaaaaaaa_s001_t001", 1200.0, [], [(10.0, 20.0)])
    _write_pair(ref, hyp, "aaaaaaab_s002_t000", 900.0, [(0.0, 30.0), (400.0, 500.0)], [(410.0, 420.0)])
    return ref, hyp


def test_score_folders(folders):
    result = score_folders(*folders)
    assert result["recordings"] == 3
    assert result["duration_s"] == 2700.0
    assert (result["ovlp"]["tp"], result["ovlp"]["fn"], result["ovlp"]["fp"]) == (2, 1, 1)
    assert result["ovlp"]["fa_per_24h"] == pytest.approx(86400 / 2700)


def test_score_folders_of_szcore_tsv(tmp_path):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    _write_pair(ref, hyp, "sub-01_ses-01_task-szMonitoring_run-00", 3600.0, [(100.0, 200.0)],
                [(150.0, 160.0), (2000.0, 2010.0)], fmt="tsv")
    result = score_folders(ref, hyp)
    assert (result["ovlp"]["tp"], result["ovlp"]["fp"]) == (1, 1)
    assert result["szcore_event"]["tp"] == 1


def test_score_folders_pairs_csv_bi_with_tsv_by_recording(tmp_path):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    write_csv_bi(ref / "x_s001_t000.csv_bi", Annotation("x_s001_t000", 600.0, [Event(10.0, 50.0)]))
    write_events_tsv(hyp / "x_s001_t000_events.tsv", Annotation("x_s001_t000", 600.0, [Event(20.0, 30.0)]))
    assert score_folders(ref, hyp)["ovlp"]["tp"] == 1


def test_missing_file_is_listed(folders):
    ref, hyp = folders
    (hyp / "aaaaaaaa_s001_t001.csv_bi").unlink()
    write_csv_bi(hyp / "zzzzzzzz_s009_t000.csv_bi", Annotation("zzzzzzzz_s009_t000", 60.0, []))
    with pytest.raises(SzflowError) as info:
        score_folders(ref, hyp)
    message = str(info.value)
    assert "aaaaaaaa_s001_t001.csv_bi" in message
    assert "zzzzzzzz_s009_t000.csv_bi" in message


def test_duration_mismatch_is_refused(tmp_path):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    write_csv_bi(ref / "r.csv_bi", Annotation("r", 600.0, [Event(10.0, 50.0)]))
    write_csv_bi(hyp / "r.csv_bi", Annotation("r", 590.0, [Event(10.0, 50.0)]))
    with pytest.raises(SzflowError, match="durations differ"):
        score_folders(ref, hyp)


def test_touching_seizure_rows_are_two_events(tmp_path):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    write_csv_bi(ref / "r.csv_bi", Annotation("r", 600.0, [Event(100.0, 150.0), Event(150.0, 200.0)]))
    write_csv_bi(hyp / "r.csv_bi", Annotation("r", 600.0, [Event(120.0, 130.0)]))
    result = score_folders(ref, hyp)
    assert (result["ovlp"]["targets"], result["ovlp"]["tp"]) == (2, 1)


def test_empty_reference_folder_is_an_error(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "hyp").mkdir()
    with pytest.raises(SzflowError, match="no .csv_bi"):
        score_folders(tmp_path / "ref", tmp_path / "hyp")


def test_cli_table_and_json(folders):
    ref, hyp = folders
    runner = CliRunner()
    table = runner.invoke(app, ["score", str(ref), str(hyp)])
    assert table.exit_code == 0, table.output
    for title in ("NEDC OVLP", "NEDC TAES", "SzCORE event", "SzCORE sample", "FA/24h"):
        assert title in table.output
    as_json = runner.invoke(app, ["score", str(ref), str(hyp), "--json"])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.output)
    assert set(result) >= {"duration_s", "recordings", "ovlp", "taes", "szcore_event", "szcore_sample"}
    for key in ("ovlp", "taes", "szcore_event", "szcore_sample"):
        assert set(result[key]) >= {"tp", "fp", "fn", "sensitivity", "fa_per_24h"}
        assert 0.0 <= result[key]["sensitivity"] <= 1.0
    assert result == score_folders(ref, hyp)


def test_cli_reports_missing_file(folders):
    ref, hyp = folders
    (hyp / "aaaaaaab_s002_t000.csv_bi").unlink()
    out = CliRunner().invoke(app, ["score", str(ref), str(hyp)])
    assert out.exit_code == 2
    assert "aaaaaaab_s002_t000.csv_bi" in out.output


def test_format_score_table_shows_na_for_undefined():
    text = format_score_table(score_corpus([RecordingEvents("q", 60.0, [], [])]))
    assert "n/a" in text
