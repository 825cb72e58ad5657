"""A throw-away copy of this project (its own git + DVC repo) with tiny params, and the command
runner the e2e tests use on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "synth": {"seed": 1, "patients": {"train": 4, "dev": 2, "eval": 2}, "recordings_per_patient": 2,
              "min_duration_s": 70, "max_duration_s": 130, "seizure_recording_fraction": 0.6,
              "broken_files": 3, "background_recordings": {"train": 0, "dev": 0, "eval": 0}},
    "preprocess": {"num_workers": 0, "max_failed_fraction": 0.3},
    "model": {"encoder_channels": [8, 16], "n_layers": 1, "d_model": 16, "d_state": 4, "chunk_size": 16,
              "expand": 2},
    "train": {"max_steps": 6, "eval_every_steps": 3, "checkpoint_every_steps": 3, "warmup_steps": 1,
              "patience_evals": 5, "val_fraction": 0.25},
    "eval": {"threshold_grid": [0.2, 0.4, 0.6, 0.8], "smoothing_grid_s": [0.0, 2.0],
             "min_duration_grid_s": [0.0], "merge_gap_grid_s": [0.0], "timeline_recordings": 1},
}


def command_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(os.environ)
    out.update(WANDB_MODE="disabled", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    out.pop("MODAL_TOKEN_ID", None)
    out.pop("MODAL_TOKEN_SECRET", None)
    out.update(extra or {})
    return out


def run_command(args: list[str], cwd: Path, timeout: float = 900, check: bool = True,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, check=False, cwd=cwd, env=command_env(extra_env), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "patients":
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def copy_project(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the project's git-visible files (no data, models or caches) and commit them in a new repo."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file() or name.startswith(("data/", "models/", "metrics/", "predictions/", "plots/")):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (dest / "dvc.lock").unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    _merge(params, TINY)
    if overrides:
        _merge(params, overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_command(["git", "init", "-q"], dest)
    run_command(["git", "add", "-A"], dest)
    run_command(["git", "commit", "-qm", "tiny project"], dest)
    return dest


@pytest.fixture(scope="session")
def run() -> Callable[..., subprocess.CompletedProcess]:
    """`run(args, cwd, timeout=900, check=True, extra_env=None)`: a command in a clean environment
    (no W&B, no DVC analytics, no Modal token); a non-zero exit fails the test unless check=False."""
    return run_command


@pytest.fixture(scope="session")
def make_project() -> Callable[..., Path]:
    """`make_project(dest, overrides=None)`: a committed copy of this project with tiny params."""
    return copy_project


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A tiny copy of this project after a full `dvc repro` (dvc.lock left uncommitted)."""
    root = copy_project(tmp_path_factory.mktemp("tiny") / "proj")
    run_command(["dvc", "repro"], root, timeout=1500)
    return root
