"""Loud kernels: the A100 profile never falls back to the torch blocks, `auto` says why it does, and
a container start logs which blocks and precision run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.model import blocks, mamba_cuda
from szflow.model.blocks import resolve_mamba_impl
from szflow.remote.container import log_runtime

REPO = Path(__file__).resolve().parents[1]
BROKEN = "mamba_ssm import failed: ImportError: cannot import name 'GreedySearchDecoderOnlyOutput'"


def test_a100_profile_requires_the_kernels():
    assert load_params(REPO, hw="a100").hardware.mamba_impl == "cuda"


def test_status_names_the_import_error(monkeypatch):
    """With CUDA but kernels that fail to import, the reason carries the exception's type and text."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "causal_conv1d", None)  # import of a None module raises ImportError
    usable, reason = mamba_cuda.mamba_ssm_status()
    assert not usable
    assert reason.startswith("mamba_ssm import failed: ModuleNotFoundError:") and "causal_conv1d" in reason


def test_auto_fallback_logs_its_reason_once(monkeypatch, caplog):
    monkeypatch.setattr(blocks, "mamba_ssm_status", lambda: (False, BROKEN))
    monkeypatch.setattr(blocks, "_fallbacks_logged", set())
    caplog.set_level(logging.INFO, logger="szflow.model")
    assert [resolve_mamba_impl("auto") for _ in range(4)] == ["torch"] * 4  # e.g. one per layer
    fallbacks = [r for r in caplog.records if "auto -> torch" in r.getMessage()]
    assert len(fallbacks) == 1 and fallbacks[0].levelno == logging.WARNING
    assert "GreedySearchDecoderOnlyOutput" in fallbacks[0].getMessage()
    with pytest.raises(SzflowError, match="GreedySearchDecoderOnlyOutput"):
        resolve_mamba_impl("cuda")


def test_auto_without_cuda_is_info_not_warning(monkeypatch, caplog):
    monkeypatch.setattr(blocks, "mamba_ssm_status", lambda: (False, mamba_cuda.CUDA_UNAVAILABLE))
    monkeypatch.setattr(blocks, "_fallbacks_logged", set())
    caplog.set_level(logging.INFO, logger="szflow.model")
    resolve_mamba_impl("auto")
    (record,) = [r for r in caplog.records if "auto -> torch" in r.getMessage()]
    assert record.levelno == logging.INFO and "CUDA unavailable" in record.getMessage()


def test_container_start_logs_blocks_and_precision(caplog):
    caplog.set_level(logging.INFO, logger="szflow.remote")
    params = load_params(REPO, hw="local", overrides={"hardware.device": "cpu", "hardware.mamba_impl": "torch",
                                                      "hardware.precision": "fp32"})
    log_runtime("train", params)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage train on")]
    assert "Mamba-2 blocks torch (hardware.mamba_impl: torch)" in line and "precision fp32" in line


def test_container_start_logs_why_the_runtime_is_unusable(caplog, monkeypatch):
    """The A100 profile on a machine without CUDA: one warning naming the problem (the stage then
    fails with the same error from the core function)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    caplog.set_level(logging.INFO, logger="szflow.remote")
    log_runtime("train", load_params(REPO, hw="a100"))
    (record,) = [r for r in caplog.records if r.getMessage().startswith("stage train: runtime not usable")]
    assert record.levelno == logging.WARNING and "cuda" in record.getMessage()
