"""Smoke runs of the electrode measurements (benchmarks/montage_equivalence.py and
benchmarks/electrode_removal.py) on a tiny finished project, and the honesty of the removal; the
parts of the other measurement scripts that compute a reported number from given inputs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from szflow.config import load_params
from szflow.data.edf import read_eeg
from szflow.scoring.sweep import ProbabilityTrack
from szflow.signal.chain import preprocess_recording
from szflow.synth import make_plan, write_recording
from szflow.synth.variants import Variant

REPO = Path(__file__).resolve().parents[1]
SYNTH = {"seed": 5, "patients": {"train": 0, "dev": 0, "eval": 2}, "recordings_per_patient": 2,
         "min_duration_s": 70, "max_duration_s": 150, "broken_files": 0}


def _script(name: str):
    benchmarks = str(REPO / "benchmarks")
    if benchmarks not in sys.path:  # the scripts import their shared helpers (`common`) as run from there
        sys.path.append(benchmarks)
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def project(tmp_path_factory, eval_project) -> Path:
    root = tmp_path_factory.mktemp("measure") / "proj"
    eval_project(root, SYNTH)
    # params.yaml says what the corpus is, so the equivalence script's plan is this corpus's.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["synth"].update(SYNTH)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def test_montage_equivalence_label_forms_agree_to_the_bit(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "equivalence.json"
    report = _script("montage_equivalence").main(
        ["--params-dir", str(project), "--workers", "0", "--background", "0", "--limit", "1", "--out", str(out)])
    assert json.loads(out.read_text())["recordings"] == report["recordings"] == 1
    rows = report["comparisons"]
    for form in ("labels_1010", "labels_padded", "labels_suffix_LE", "labels_suffix_REF"):
        assert rows[form]["recordings"] == 1 and rows[form]["max_abs_difference"] == 0.0
        assert all(p["missed"] == p["added"] == 0 for p in rows[form]["points"].values())
    assert rows["bipolar_chbmit"]["electrodes_present"] == [16]
    assert rows["bipolar_tcp"]["electrodes_present"] == [17]
    assert "expected to differ" in rows["bipolar_tcp"]["expected"]
    # Like for like: the same electrodes read directly or reconstructed differ far less than the
    # missing electrodes change (the reconstruction is exact but for the EDF's quantisation).
    for bipolar, less in (("bipolar_chbmit", "FZ CZ PZ"), ("bipolar_tcp", "FZ PZ")):
        same = rows[f"{bipolar} vs referential less {less}"]
        assert same["electrodes_present"] == rows[bipolar]["electrodes_present"]
        assert same["mean_abs_difference"] < 0.2 * rows[bipolar]["mean_abs_difference"]


def test_electrode_removal_k0_is_the_eval_stage(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "removal.json"
    report = _script("electrode_removal").main(
        ["--workdir", str(project), "--workers", "0", "--k", "0", "2", "--draws", "2", "--out", str(out)])
    assert set(report["runs"]) == {"0/0", "2/0", "2/1"}  # k = 0 is deterministic: one draw
    evaluated = json.loads((project / "metrics" / "detail" / "eval.json").read_text())["operating_points"]
    for key, ovlp in report["runs"]["0/0"]["ovlp"].items():
        assert ovlp == evaluated[key]["ovlp"]
    for run in ("2/0", "2/1"):
        assert report["runs"][run]["recordings_scored"] == 4 and not report["failures"]
        removed = report["runs"][run]["removed_per_file"]
        assert len(removed) == 4 and all(len(names) == 2 for names in removed.values())
    assert report["runs"]["2/0"]["removed_per_file"] != report["runs"]["2/1"]["removed_per_file"]
    assert set(report["per_k"]) == {"0", "2"} and report["target"]["k"] == 2
    assert json.loads(out.read_text())["per_k"]["2"]["draws"] == 2
    # The eval stage's own tracks for k = 0: the same scores, nothing computed.
    from_eval = _script("electrode_removal").main(["--workdir", str(project), "--workers", "0", "--k", "0",
                                                   "--k0-from-eval"])
    assert from_eval["runs"]["0/0"]["ovlp"] == report["runs"]["0/0"]["ovlp"]
    assert from_eval["runs"]["0/0"]["recordings_scored"] == 4


def test_electrode_removal_keeps_its_tracks_and_reuses_them(project: Path, tmp_path: Path, monkeypatch) -> None:
    removal = _script("electrode_removal")
    args = ["--workdir", str(project), "--workers", "0", "--k", "0", "2", "--draws", "1",
            "--tracks", str(tmp_path / "tracks")]
    first = removal.main(args)
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == [
        "k0_draw0.json", "k0_draw0.npz", "k2_draw0.json", "k2_draw0.npz"]

    def no_inference(job):
        raise AssertionError("stored runs must not be computed again")

    monkeypatch.setattr(removal, "predict_runs", no_inference)
    again = removal.main(args)
    for run in ("0/0", "2/0"):
        assert again["runs"][run]["ovlp"] == first["runs"][run]["ovlp"]
        assert again["runs"][run]["removed_per_file"] == first["runs"][run]["removed_per_file"]
    assert again["per_k"] == first["per_k"]


def test_removal_is_a_file_without_those_electrodes(project: Path, tmp_path: Path) -> None:
    """Dropping electrodes from a read recording preprocesses exactly as a file that never had them."""
    removal = _script("electrode_removal")
    params = load_params(project)
    spec = make_plan(params.synth).split("eval")[0]
    spec = dataclasses.replace(spec, variant=Variant())
    absent = ("C3", "O2")
    write_recording(tmp_path / "full.edf", spec)
    write_recording(tmp_path / "fewer.edf", dataclasses.replace(spec, variant=Variant("missing_electrodes", absent)))
    dropped = removal.drop_electrodes(read_eeg(tmp_path / "full.edf"), list(absent))
    honest = read_eeg(tmp_path / "fewer.edf", min_electrodes=12)
    assert dropped.montage.missing == honest.montage.missing == absent
    np.testing.assert_array_equal(preprocess_recording(dropped, params.preprocess),
                                  preprocess_recording(honest, params.preprocess))
    # The draw depends only on (seed, k, draw, file name), and only present electrodes are drawn.
    present = honest.montage.present
    first = removal.removed_electrodes(present, 4, 1, 0, "a.edf")
    assert first == removal.removed_electrodes(present, 4, 1, 0, "a.edf") and not set(first) & set(absent)


def _stream_record(name: str, offline: list, online: list, latency: float) -> dict:
    """One recording's record as bench_stream's `measure_recording` writes it (one point '10',
    lookahead 5), here for a 1 h recording with one seizure at 100-160 s."""
    entry = {"latency_onset": [latency], "latency_confirmed": [latency + 20.0], "withdrawn": 1,
             "alarm_false_alarms": 0, "events": online, "agree": [len(online), len(offline), 0, len(online)]}
    return {"name": name, "duration_s": 3600.0, "reference": [[100.0, 160.0]], "offline": {"10": offline},
            "online": {"5.0": {"diff_max": 0.5, "diff_sum": 10.0, "frames": 14400, "points": {"10": entry}}}}


def test_stream_agreement_records_merge_and_survive_a_cut_line(tmp_path: Path) -> None:
    """The whole-split stream agreement is measured in shards that append one line per recording:
    the report over the shards' files is the report over all the recordings, and a line a killed
    run left unfinished is dropped (its recording measured again), not a crash."""
    bench = _script("bench_stream")
    args = type("Args", (), {"lookahead": [5.0]})()
    params = load_params(REPO)
    hit, miss = _stream_record("a", [[105.0, 150.0]], [[110.0, 150.0]], 9.0), _stream_record("b", [], [], 0.0)
    miss["online"]["5.0"]["points"]["10"]["latency_onset"] = []
    miss["online"]["5.0"]["points"]["10"]["latency_confirmed"] = []
    whole = tmp_path / "whole.jsonl"
    whole.write_text(json.dumps(hit) + "\n" + json.dumps(miss) + "\n")
    (tmp_path / "records-0of2.jsonl").write_text(json.dumps(hit) + "\n")
    (tmp_path / "records-1of2.jsonl").write_text(json.dumps(miss) + "\n" + '{"name": "c", "durat')
    assert [r["name"] for r in bench.read_records_file(tmp_path / "records-1of2.jsonl")] == ["b"]
    resumed = tmp_path / "resumed.jsonl"  # a resumed run ends the cut line once, then appends whole lines
    resumed.write_text(json.dumps(miss) + "\n" + '{"name": "c", "durat')
    bench.end_cut_line(resumed)
    bench.end_cut_line(resumed)  # a whole last line is left as it is
    with open(resumed, "a") as handle:
        handle.write(json.dumps(hit) + "\n")
    assert [r["name"] for r in bench.read_records_file(resumed)] == ["b", "a"]
    merged = bench.report(sorted(tmp_path.glob("records-*.jsonl")), args, params, ["10"])
    assert merged == bench.report([whole], args, params, ["10"])
    row = merged["by_lookahead"]["5.0"]["points"]["10"]
    assert merged["recordings"] == 2 and merged["hours"] == pytest.approx(2.0)
    assert row["online_ovlp"]["tp"] == 1 and row["online_ovlp"]["fn"] == 1  # one seizure found of two
    assert merged["offline"]["10"]["tp"] == 1 and row["latency_onset"] == {"median_s": 9.0, "p90_s": 9.0, "n": 1}
    assert merged["by_lookahead"]["5.0"]["p_abs_diff_mean"] == pytest.approx(20.0 / 28800)


def _false_alarm_track(recording_id: str, alarms: int, hours: float = 1.0) -> ProbabilityTrack:
    rate = 1.0
    probabilities = np.zeros(int(hours * 3600 * rate), np.float32)
    for k in range(alarms):  # 60 s events, 5 minutes apart, no reference: each is one false alarm
        probabilities[300 * k + 10: 300 * k + 70] = 1.0
    return ProbabilityTrack(recording_id, probabilities, rate, hours * 3600.0)


def test_between_split_dispersion_reads_one_for_alike_splits_and_more_for_splits_that_differ():
    draws = _script("eval_draws")
    point = {"smoothing_s": 0.0, "threshold": 0.5, "hysteresis_low": None, "min_duration_s": 0.0,
             "merge_gap_s": 0.0}
    frozen = {"detector": {"10": point, "5": dict(point)}}

    def split(name: str, per_patient: list[int]) -> list:
        return [_false_alarm_track(f"{name}{i:03d}_s001_t000", n) for i, n in enumerate(per_patient)]

    alike = {"a": split("a", [1] * 10), "b": split("b", [1] * 10), "c": split("c", [1] * 10)}
    table = draws.between_split_dispersion(alike, frozen)
    row = table.splitlines()[2]
    assert "| 10, 5 |" in row and "a 10, b 10, c 10" in row and row.endswith("| 0.00 | 0.00 |")
    # Ten hour-long patients per split; 2, 10 and 18 false alarms against 10 expected in each: over
    # Poisson sum (x - 10)^2 / 10 / 2 = 6.4; c's alarms come in twos (dispersion 34 / 18), which
    # accounts for part of its excess.
    apart = {"a": split("a", [1, 1] + [0] * 8), "b": split("b", [1] * 10), "c": split("c", [2] * 8 + [1, 1])}
    row = draws.between_split_dispersion(apart, frozen).splitlines()[2]
    assert "a 2, b 10, c 18" in row
    assert row.endswith(f"| {(6.4 + 6.4 / (34 / 18)) / 2:.2f} | 6.40 |")


def test_between_split_dispersion_over_the_grid_averages_where_the_targets_lie():
    draws = _script("eval_draws")
    params = load_params(Path(__file__).resolve().parents[1], overrides={
        "eval.threshold_grid": [0.5, 0.9], "eval.smoothing_grid_s": [0.0], "eval.min_duration_grid_s": [0.0],
        "eval.merge_gap_grid_s": [0.0], "eval.hysteresis_low_grid": [None],
        "eval.operating_points_fa_per_24h": [30, 10]})

    def split(name: str, per_patient: list[int]) -> list:
        return [_false_alarm_track(f"{name}{i:03d}_s001_t000", n) for i, n in enumerate(per_patient)]

    # The splits of the previous test: 30 false alarms in 30 h (24/24h, within 10-30) at both thresholds.
    apart = {"a": split("a", [1, 1] + [0] * 8), "b": split("b", [1] * 10), "c": split("c", [2] * 8 + [1, 1])}
    table, mean = draws.between_split_dispersion_over_grid(apart, params)
    assert mean == pytest.approx((6.4 + 6.4 / (34 / 18)) / 2)
    assert "| 0.9 | 24.00 | yes |" in table and "mean over the 2 thresholds within the targets" in table
    low = load_params(Path(__file__).resolve().parents[1], overrides={
        "eval.threshold_grid": [0.5], "eval.smoothing_grid_s": [0.0], "eval.min_duration_grid_s": [0.0],
        "eval.merge_gap_grid_s": [0.0], "eval.hysteresis_low_grid": [None]})
    table, mean = draws.between_split_dispersion_over_grid(apart, low)
    assert mean is None and "| 0.5 | 24.00 | no |" in table
