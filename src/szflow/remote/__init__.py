"""Run the GPU stages (train, dev, eval) here or on Modal; `run_stage` picks from the profile.

Importing this package never imports modal: it loads only when a remote run or the Modal app is
built.
"""

from szflow.remote.executor import (
    Executor,
    LocalExecutor,
    ModalExecutor,
    RemoteExecutor,
    get_executor,
    run_stage,
)
from szflow.remote.specs import GPU_STAGES, StageSpec, get_stage

__all__ = [
    "GPU_STAGES",
    "Executor",
    "LocalExecutor",
    "ModalExecutor",
    "RemoteExecutor",
    "StageSpec",
    "get_executor",
    "get_stage",
    "run_stage",
]
