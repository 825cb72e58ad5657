"""The whole workflow through `dvc repro` on a tiny corpus and model, in a temporary git repo."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tiny_project: Path) -> Path:
    return tiny_project


@contextlib.contextmanager
def hardware_profile(project: Path, hw: str) -> Iterator[None]:
    """params.yaml with another `hw` for the duration of the block, as `dvc exp run -S hw=...` does."""
    params_path = project / "params.yaml"
    original = params_path.read_text()
    try:
        params = yaml.safe_load(original)
        params["hw"] = hw
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        yield
    finally:
        params_path.write_text(original)


def test_repro_leaves_every_output(project: Path):
    for path in ("models/best.pt", "models/last.pt", "models/baseline.json", "models/operating_points.json",
                 "metrics/train.json", "metrics/dev.json", "metrics/eval.json", "metrics/detail/dev.json",
                 "metrics/detail/eval.json", "data/preprocess/report.csv",
                 "plots/png/froc.png", "plots/froc_eval_network.csv", "plots/dvc_plots_template.html",
                 "plots/review_eval.html", "dvc.lock"):
        assert (project / path).exists(), path
    assert list((project / "predictions" / "eval").rglob("*.csv_bi"))
    assert list((project / "predictions" / "eval").rglob("*_events.tsv"))
    report = (project / "data" / "preprocess" / "report.csv").read_text()
    assert "failed" in report  # the deliberately broken files were reported and skipped


def test_metrics_are_sane(project: Path):
    headline = json.loads((project / "metrics" / "eval.json").read_text())["eval"]
    assert {"auroc", "fa10", "fa5", "fa2.5", "fa1", "szcore_f1_subject_mean_fa10"} <= set(headline)
    assert set(headline["fa10"]) == {"sens_pooled", "fa_24h"}
    certified = json.loads((project / "metrics" / "dev.json").read_text())["dev"]
    assert isinstance(certified["fa10_certified"], bool)
    metrics = json.loads((project / "metrics" / "detail" / "eval.json").read_text())
    assert metrics["split"] == "eval" and metrics["recordings"] > 0
    assert 0.0 <= metrics["auroc"] <= 1.0
    assert set(metrics["operating_points"]) == {"10", "5", "2.5", "1"}
    for point in metrics["operating_points"].values():
        for scorer in ("ovlp", "taes", "szcore_event", "szcore_sample"):
            assert 0.0 <= point[scorer]["sensitivity"] <= 1.0
            assert point[scorer]["fa_per_24h"] >= 0.0
        low, high = point["ovlp"]["fa_per_24h_interval"]
        assert low <= point["ovlp"]["fa_per_24h"] <= high
    assert "operating_points" in metrics["baseline"]
    frozen = json.loads((project / "models" / "operating_points.json").read_text())
    for key, point in metrics["operating_points"].items():
        for name, value in point["settings"].items():
            assert frozen["detector"][key][name] == value  # eval used dev's operating points unchanged


def test_second_repro_reruns_nothing(project: Path, run):
    # What Python and numba leave beside the sources (a test run, another interpreter) is no change.
    for folder in ("src/szflow/signal", "src/szflow/train", "src/szflow"):
        cache = project / folder / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / f"junk.cpython-311.pyc.{time.time_ns()}").write_bytes(b"\0")
        (cache / "iir._run_sections-26.py311.nbi").write_bytes(str(time.time_ns()).encode())
    (project / "src" / "szflow" / "stray.pyc").write_bytes(b"\0")
    result = run(["dvc", "repro"], project)
    assert "Running stage" not in result.stdout, result.stdout
    shown = run(["dvc", "metrics", "show"], project).stdout
    assert "metrics/eval.json" in shown


def test_plots_show_writes_a_page_that_needs_no_network(project: Path, tmp_path: Path, run):
    out = tmp_path / "dvc_plots"
    run(["dvc", "plots", "show", "--html-template", "plots/dvc_plots_template.html", "-o", str(out)], project)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "window.vegaEmbed=" in page and "cdn.jsdelivr" not in page
    assert page.count("vegaEmbed('#") + page.count('vegaEmbed("#') >= 4  # FROC dev/eval, ROC, PR (+ training)
    assert "froc.png" in page


def test_changing_hw_leaves_preprocess_and_cache_untouched(project: Path, run):
    with hardware_profile(project, "a100"):
        status = run(["dvc", "status", "--json"], project).stdout
    changed = {name.split(":")[-1] for name in json.loads(status or "{}")}
    assert {"train", "dev", "eval"} <= changed
    assert not {"synth", "preprocess", "cache"} & changed


def test_a100_without_modal_token_fails_fast_and_leaves_nothing_half_written(project: Path, run):
    with hardware_profile(project, "a100"):
        started = time.monotonic()
        result = run(["dvc", "repro"], project, check=False, timeout=300)
        elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "modal token new" in output
    assert elapsed < 120
    for stage in ("synth", "preprocess", "cache"):
        assert f"Running stage '{stage}'" not in output  # reused, not recomputed
    # DVC moves a stage's outs aside before running it; what we write is atomic, so nothing partial.
    leftovers = [p for p in project.rglob("*.tmp") if ".dvc" not in p.parts]
    assert not leftovers, leftovers
    # The previous (local) results come straight back from the DVC cache.
    run(["dvc", "checkout", "-f"], project)
    assert "Running stage" not in run(["dvc", "repro"], project).stdout
