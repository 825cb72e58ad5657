from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.project import make_project, run


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A tiny copy of this project after a full `dvc repro` (dvc.lock left uncommitted)."""
    root = make_project(tmp_path_factory.mktemp("tiny") / "proj")
    run(["dvc", "repro"], root, timeout=1500)
    return root
