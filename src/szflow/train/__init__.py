"""Training: the loop (`run_train_stage`), losses, schedule, RNG state, logging, the validation split.

`run_train_stage(params, workdir)` is the core function of the `train` stage; the executor
(`szflow.remote`) calls it here or in a Modal container. Importing this package is cheap: the loop
and its torch imports load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_params_hash", "run_train_stage", "split_by_patient"]


def __getattr__(name: str) -> Any:
    if name in ("run_train_stage", "run_params_hash"):
        from szflow.train import loop

        return getattr(loop, name)
    if name == "split_by_patient":
        from szflow.train.split import split_by_patient

        return split_by_patient
    raise AttributeError(f"module 'szflow.train' has no attribute {name!r}")
