"""Detector network: pure-PyTorch Mamba-2 (CPU path), mamba_ssm wrapper (CUDA path), checkpoints."""

from szflow.model.blocks import make_mamba_block, resolve_mamba_impl
from szflow.model.checkpoint import (
    Checkpoint,
    capture_rng_state,
    load_checkpoint,
    load_detector,
    restore_rng_state,
    save_checkpoint,
)
from szflow.model.detector import PAD_LOGIT, Detector, describe_model, frames_for, samples_per_frame
from szflow.model.mamba_torch import Mamba2Torch, ssd_scan

__all__ = [
    "PAD_LOGIT",
    "Checkpoint",
    "Detector",
    "Mamba2Torch",
    "capture_rng_state",
    "describe_model",
    "frames_for",
    "load_checkpoint",
    "load_detector",
    "make_mamba_block",
    "resolve_mamba_impl",
    "restore_rng_state",
    "samples_per_frame",
    "save_checkpoint",
    "ssd_scan",
]
