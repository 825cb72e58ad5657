"""Seeds and RNG state, so a resumed run draws the same random numbers as an uninterrupted one.

The capture/restore pair lives with the checkpoint format (`szflow.model.checkpoint`, stored as
tensors and lists so last.pt loads with weights_only=True); it is re-exported here so the training
code has one place for everything random.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from szflow.model.checkpoint import capture_rng_state, restore_rng_state

__all__ = ["capture_rng_state", "restore_rng_state", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device
