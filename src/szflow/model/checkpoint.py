"""Checkpoints: one torch file holding only tensors and primitives, so `torch.load(weights_only=True)` reads it.

Layout (a plain dict):
    format: "szflow-checkpoint", format_version: 2, torch_version: str
    state_dict: {name: CPU tensor}            same keys for both Mamba implementations
    model_config: ModelConfig as a JSON-able dict
    training_data: {str: str|int|float}       what the model was trained on (`source`: data.source,
                                              `corpus_fingerprint`, `recordings`, `hours`, ...);
                                              `szflow detect` warns when the source is synthetic
    step, epoch: int; metrics: {str: float|int|str|...}; params_hash: str
    training_state: dict | None               optimizer/scheduler/scaler/sampler/RNG (last.pt only)
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from szflow.config import ModelConfig
from szflow.errors import CheckpointError
from szflow.io_utils import atomic_path
from szflow.model.detector import Detector

log = logging.getLogger("szflow.model")

FORMAT = "szflow-checkpoint"
# 2: the detector reads a presence mask (its encoder projection is wider) and the checkpoint
# records its training data; a version-1 file cannot load into this detector.
FORMAT_VERSION = 2
_PRIMITIVES = (str, int, float, bool, type(None), torch.dtype, torch.Size)
_BASE_TYPES = (bool, int, float, str)  # subclasses (IntEnum, TorchVersion, ...) pickle as their class


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    model_config: ModelConfig
    step: int
    epoch: int = 0
    metrics: dict = field(default_factory=dict)
    params_hash: str = ""
    training_state: dict | None = None
    training_data: dict = field(default_factory=dict)


def _to_safe(obj: Any, where: str) -> Any:
    """Copy `obj` with tensors detached on CPU and numpy scalars as Python numbers (arrays: use tensors).

    Anything weights_only loading would refuse raises here, at save time, naming the key, rather
    than producing a file that later cannot be read back (DESIGN.md §10).
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if type(obj) in _PRIMITIVES:
        return obj
    for base in _BASE_TYPES:
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where}: key {key!r} is a {type(key).__name__}; use str or int keys")
            out[key] = _to_safe(value, f"{where}.{key}")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_to_safe(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise CheckpointError(
        f"{where}: cannot store a {type(obj).__module__}.{type(obj).__name__} in a checkpoint "
        "(only tensors, numbers, strings, lists, tuples and dicts load with weights_only=True)"
    )


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    model_config: ModelConfig,
    step: int,
    epoch: int = 0,
    metrics: dict | None = None,
    params_hash: str = "",
    training_state: dict | None = None,
    training_data: dict | None = None,
) -> None:
    """Write a checkpoint atomically (a crash mid-write leaves the previous file intact)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": str(torch.__version__),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": model_config.model_dump(mode="json"),
        "step": int(step),
        "epoch": int(epoch),
        "metrics": _to_safe(dict(metrics or {}), "metrics"),
        "params_hash": str(params_hash),
        "training_data": _to_safe(dict(training_data or {}), "training_data"),
        "training_state": None if training_state is None else _to_safe(training_state, "training_state"),
    }
    # Saved through a file handle, not the path: torch names the records inside the zip after the
    # file it is given, and the temporary name is random, so the same checkpoint would differ byte
    # for byte from run to run (and DVC would see a changed dependency downstream).
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
    log.debug("saved checkpoint %s (step %d)", path, step)


def config_differences(stored: dict, expected: ModelConfig) -> list[str]:
    """'key: checkpoint X != expected Y' for each differing model-config key."""
    want = expected.model_dump(mode="json")
    diffs = []
    for key in sorted(set(stored) | set(want)):
        a, b = stored.get(key, "<missing>"), want.get(key, "<missing>")
        if a != b:
            diffs.append(f"{key}: checkpoint {a!r} != expected {b!r}")
    return diffs


def load_checkpoint(path: str | Path, expected_config: ModelConfig | None = None) -> Checkpoint:
    """Read a checkpoint onto the CPU; CheckpointError if unreadable or made for another model config."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load raises many types (RuntimeError for a bad zip, UnpicklingError for a disallowed
    # global, EOFError, ...); all mean the same to the user: this file cannot be used.
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an szflow checkpoint (no '{FORMAT}' marker)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {payload.get('format_version')!r} is not {FORMAT_VERSION}; "
            "it was written by another szflow version: train again (`dvc repro train`)"
        )
    stored = payload.get("model_config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: checkpoint has no model_config")
    if expected_config is not None:
        diffs = config_differences(stored, expected_config)
        if diffs:
            raise CheckpointError(
                f"{path}: model config differs from the expected one ({len(diffs)} key(s)): " + "; ".join(diffs)
            )
    try:
        config = ModelConfig.model_validate(stored)
    except ValidationError as exc:
        raise CheckpointError(f"{path}: stored model_config is invalid: {exc}") from None
    return Checkpoint(
        state_dict=payload["state_dict"],
        model_config=config,
        step=int(payload.get("step", 0)),
        epoch=int(payload.get("epoch", 0)),
        metrics=dict(payload.get("metrics") or {}),
        params_hash=str(payload.get("params_hash", "")),
        training_state=payload.get("training_state"),
        training_data=dict(payload.get("training_data") or {}),
    )


def load_detector(
    path: str | Path,
    expected_config: ModelConfig | None = None,
    mamba_impl: str = "auto",
    device: str | torch.device = "cpu",
):
    """(Detector in eval mode on `device`, Checkpoint). "auto" on a non-CUDA device uses the torch blocks."""
    ckpt = load_checkpoint(path, expected_config)
    device = torch.device(device)
    if mamba_impl == "auto" and device.type != "cuda":
        mamba_impl = "torch"  # mamba_ssm modules only run on CUDA tensors
    model = Detector(ckpt.model_config, mamba_impl=mamba_impl)
    result = model.load_state_dict(ckpt.state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: state_dict does not fit the Detector: missing {result.missing_keys[:10]}, "
            f"unexpected {result.unexpected_keys[:10]}"
        )
    return model.to(device).eval(), ckpt


# ----------------------------------------------------------------------------- RNG state helpers
def capture_rng_state() -> dict:
    """Python, numpy (legacy global) and torch RNG states as tensors/lists (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
