"""`szflow runs`: the experiments table built from `dvc exp show --json` holds the changed params and
the eval headline metrics (szflow.evaluate.headline), one line per experiment, within 120 columns."""

from __future__ import annotations

from pathlib import Path

import yaml

from szflow.evaluate import headline
from szflow.experiments import RUN_PARAMS, runs_table

REPO = Path(__file__).resolve().parents[1]


def _report(split: str, sensitivity: float, certified: bool) -> dict:
    point = {"ovlp": {"sensitivity": sensitivity, "fa_per_24h": 3.81234},
             "szcore_event_subject_mean": {"f1": 0.8}, "certification": {"certified": certified}}
    loose = {**point, "certification": {"certified": True}}
    # Listed tightest first, as a sorted JSON file lists "fa2.5" before "fa10": the table sorts them.
    return {"split": split, "auroc": 0.99172, "operating_points": {"2.5": point, "10": loose},
            "baseline": {"operating_points": {"10": point}}}


def _state(rev: str, name: str | None, lr: float, sensitivity: float, certified: bool) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["lr"] = lr
    return {"rev": rev, "name": name, "data": {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"metrics/dev.json": {"data": headline(_report("dev", sensitivity, certified))},
                    "metrics/eval.json": {"data": headline(_report("eval", sensitivity, certified))}}}}


def _exp_show() -> list[dict]:
    """The shape of `dvc exp show --json`: the workspace, then each baseline with its experiments."""
    baseline = _state("f694086f1232a8b35f412bb588304cc9965c178b", "main", 0.0005, 0.9, False)
    experiment = _state("15971c4504d73d3640ad1e20e828a1257269b2b2", "rathe-weal", 0.001, 0.75, True)
    failed = {"rev": "0123456789abcdef", "name": None, "data": None}
    baseline["experiments"] = [{"revs": [experiment]}, {"revs": [failed]}]
    return [_state("workspace", None, 0.0005, 0.9, False), baseline]


def test_runs_table_has_one_line_per_experiment_with_params_and_headline():
    lines = runs_table(_exp_show()).splitlines()
    assert lines[0].split() == ["experiment", *(title for _, title in RUN_PARAMS), "auroc", "@10", "@2.5",
                                "f1_subj", "base"]
    assert lines[1].split()[0] == "workspace" and lines[2].split()[0] == "main"
    experiment = lines[3].split()
    assert experiment[0] == "rathe-weal" and "0.001" in experiment
    # dev certified both points; metrics keep three decimals (0.8 prints 0.800 beside 0.750)
    assert experiment[-4:] == ["0.750/3.8*", "0.750/3.8*", "0.800", "0.750"]
    assert lines[2].split()[-3] == "0.900/3.8"  # not certified: no mark
    assert lines[4].split() == ["0123456"] + ["-"] * (len(lines[0].split()) - 1)  # no data: dashes
    assert "0.992" in lines[1]


def test_runs_table_fits_a_120_column_terminal():
    assert max(len(line) for line in runs_table(_exp_show()).splitlines()) <= 120


def test_run_params_are_params_yaml_keys():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, _ in RUN_PARAMS:
        node = params
        for part in key.split("."):
            node = node[part]
