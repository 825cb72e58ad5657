"""Two `dvc exp run` of the same params, each from scratch in its own clone and DVC cache (so nothing
can be restored from a run-cache), give byte-identical metrics and the same trained weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


def _experiment(dest: Path, make_project, run) -> Path:
    project = make_project(dest)
    output = run(["dvc", "exp", "run"], project, timeout=1500).stdout
    # Every stage really ran in this clone (nothing came from another clone's cache).
    for stage in ("synth", "preprocess", "cache", "train", "dev", "eval"):
        assert f"Running stage '{stage}'" in output, output
    return project


def _state_digest(checkpoint: Path) -> str:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_two_experiments_with_the_same_params_give_identical_results(tmp_path: Path, make_project, run):
    first = _experiment(tmp_path / "first", make_project, run)
    second = _experiment(tmp_path / "second", make_project, run)
    for name in ("metrics/eval.json", "metrics/dev.json", "metrics/detail/eval.json", "metrics/detail/dev.json",
                 "models/operating_points.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert _state_digest(first / "models" / "best.pt") == _state_digest(second / "models" / "best.pt")
    # Byte-identical too, so DVC sees the same dependency downstream of train.
    assert (first / "models" / "best.pt").read_bytes() == (second / "models" / "best.pt").read_bytes()
    # `dvc exp show` lists the experiment with the eval metrics it produced.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], first).stdout)
    assert "metrics/eval.json" in json.dumps(shown)
