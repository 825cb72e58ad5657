"""Seeding and RNG capture/restore, so a resumed run draws the same random numbers as an uninterrupted one.

States are stored as tensors, lists and ints only, so a checkpoint holding them still loads with
`torch.load(weights_only=True)` (numpy arrays would need an allow-list).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The state of every global generator the training step can touch (dropout, shuffles, ...)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.uint32).astype(np.int64)),
                  int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`. CUDA states are restored only when as many devices are visible."""
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    keys = np.asarray(torch.as_tensor(np_keys).numpy(), dtype=np.uint32)
    np.random.set_state((np_name, keys, int(np_pos), int(np_has_gauss), float(np_gauss)))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
