"""benchmarks/gpu_model_check.py, the device check, as far as a CPU machine can run it: --dry-run
builds the seed-size models and reports the package versions against the image lock, --smoke runs
every measured part on a tiny model, and without CUDA the real check fails with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from szflow.config import load_params

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks/gpu_model_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)


def test_dry_run_builds_the_seed_model_at_the_a100_batch():
    result = _run("--dry-run")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    report = json.loads(line)
    hardware = load_params(REPO, hw="a100").hardware
    assert report["batch"] == hardware.train_batch_size and report["inference_batch"] == hardware.inference_batch_size
    assert report["dry_run"]["train_input_shape"][0] == hardware.train_batch_size
    assert report["params"] > 1_000_000  # the seed-size detector, not the smoke model
    assert set(report["packages"]) == {"torch", "mamba-ssm", "causal-conv1d", "transformers", "triton"}
    assert report["packages"]["torch"]["locked"] == "2.6.0"


def test_smoke_runs_every_measured_part():
    result = _run("--smoke")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"train_step_s", "inference_s_per_eeg_hour", "train_peak_mem_gb"} <= set(report["torch_impl"])
    assert report["wall_s"] >= 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_without_cuda_the_device_check_fails_clearly():
    result = _run()
    assert result.returncode == 2
    assert "CUDA unavailable" in json.loads(result.stdout)["error"]
