"""`szflow runs`: the columns it keeps from `dvc exp show` are the headline metrics and the params
people change, and nothing else (no other params.yaml key, no dep path)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from szflow.cli import RUNS_COLUMNS, RUNS_PARAMS, runs_command
from szflow.evaluate import headline

REPO = Path(__file__).resolve().parents[1]


def _flat(tree: dict, prefix: str = "") -> list[str]:
    """Column names as `dvc exp show` writes them: nested keys joined by dots."""
    names = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        names += _flat(value, name + ".") if isinstance(value, dict) else [name]
    return names


def _report(split: str) -> dict:
    point = {"ovlp": {"sensitivity": 0.9, "fa_per_24h": 3.0}, "szcore_event_subject_mean": {"f1": 0.8},
             "certification": {"certified": True}}
    return {"split": split, "auroc": 0.95, "operating_points": {"10": point, "2.5": point},
            "baseline": {"operating_points": {"10": point}}}


def _kept(name: str) -> bool:
    return re.match(RUNS_COLUMNS, name) is not None


def test_runs_keeps_every_headline_metric_and_the_changed_params():
    metrics = _flat(headline(_report("dev"))) + _flat(headline(_report("eval")))
    assert "eval.fa2.5.sens_pooled" in metrics and "dev.fa10_certified" in metrics
    assert all(_kept(name) for name in [*metrics, *RUNS_PARAMS, "Experiment", "Created"])
    assert len(metrics) + len(RUNS_PARAMS) + 2 <= 25


def test_runs_drops_every_other_param_and_every_dep_path():
    params = _flat(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert set(RUNS_PARAMS) <= set(params)
    dropped = [name for name in params if name not in RUNS_PARAMS]
    deps = ["src/szflow/evaluate.py", "data/cache/train", "models/best.pt", "metrics/detail/eval.json"]
    assert not [name for name in dropped + deps + ["eval.threshold_grid"] if _kept(name)]


def test_runs_passes_dvc_options_through():
    assert runs_command(["--md", "-A"])[:3] == ["dvc", "exp", "show"]
    assert runs_command(["--md", "-A"])[-2:] == ["--md", "-A"]
