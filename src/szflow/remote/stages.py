"""The one list of GPU stages: which core function each runs, which files it reads and writes.

`dvc.yaml` mirrors these paths (a test checks that the two agree). The executors use them to know
what to upload to a remote container and which outputs to bring back; nothing else hard-codes them.
Core functions are named by import path and resolved only when a stage runs, so importing this
module never imports torch or the training code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from szflow.errors import SzflowError

# Every core stage function has this shape: read fixed inputs under `workdir`, write fixed outputs
# under `workdir`, return a small JSON-able summary.
CoreFunction = Callable[..., dict]


@dataclass(frozen=True)
class StageSpec:
    name: str
    # "module.path:function"
    function: str
    # DVC deps that are data (files or folders), relative to the project root.
    inputs: tuple[str, ...]
    # DVC outs and metrics (files or folders), relative to the project root.
    outputs: tuple[str, ...]
    # Config files the container gets beside the data, so a core function that re-reads
    # params.yaml sees the same values (the params themselves travel as JSON with the job).
    config_inputs: tuple[str, ...] = ("params.yaml", "params")
    # Outputs that a retried container must find again (resume after preemption): synced to the
    # volume while the stage runs, restored into the workdir before it starts.
    resume_files: tuple[str, ...] = ()
    # Whether the stage can run as several processes (torchrun) when hardware.gpus > 1.
    distributed: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> CoreFunction:
        return resolve_function(self.function)

    @property
    def modal_function_name(self) -> str:
        return f"{self.name}_stage"


def resolve_function(path: str) -> CoreFunction:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise SzflowError(f"stage function {path!r}: expected 'module.path:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SzflowError(f"stage function {path!r}: cannot import {module_name} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SzflowError(f"stage function {path!r}: {module_name} has no attribute {attr!r}") from None


GPU_STAGES: dict[str, StageSpec] = {
    "train": StageSpec(
        name="train",
        function="szflow.train:run_train_stage",
        inputs=("data/cache/train",),
        outputs=(
            "models/best.pt",
            "models/last.pt",
            "models/baseline.json",
            "metrics/train.json",
            "metrics/train_curves",
        ),
        resume_files=("models/last.pt",),
        distributed=True,
        description="train the detector on the training cache; best.pt chosen on the validation split",
    ),
    "dev": StageSpec(
        name="dev",
        function="szflow.evaluate:run_dev_stage",
        inputs=("data/cache/dev", "models/best.pt", "models/baseline.json"),
        outputs=("predictions/dev", "metrics/dev.json", "models/operating_points.json"),
        description="predict dev, tune post-processing operating points",
    ),
    "eval": StageSpec(
        name="eval",
        function="szflow.evaluate:run_eval_stage",
        inputs=(
            "data/cache/eval",
            "models/best.pt",
            "models/baseline.json",
            "models/operating_points.json",
        ),
        outputs=("predictions/eval", "metrics/eval.json"),
        description="predict eval with the frozen dev operating points, score",
    ),
}

# Scale-out of preprocessing over recordings (CPU containers, Modal `.map`); only used when the
# corpus lives in a cloud bucket. `process_recording(job: RecordingJob) -> JobResult` never raises
# for a bad file, so one broken recording cannot fail the map.
PREPROCESS_RECORDING_FUNCTION = "szflow.signal.pipeline:process_recording"
PREPROCESS_OUTPUT = "data/preprocess"

# Extra specs registered at run time (tests register a dummy stage here).
_EXTRA: dict[str, StageSpec] = {}


def register_stage(spec: StageSpec) -> None:
    """Register (or replace) a stage spec outside GPU_STAGES, e.g. a dummy stage in tests."""
    if spec.name in GPU_STAGES:
        raise SzflowError(f"stage {spec.name!r} is built in; register under another name")
    _EXTRA[spec.name] = spec


def unregister_stage(name: str) -> None:
    _EXTRA.pop(name, None)


def get_stage(name: str) -> StageSpec:
    spec = GPU_STAGES.get(name) or _EXTRA.get(name)
    if spec is None:
        known = sorted({*GPU_STAGES, *_EXTRA})
        raise SzflowError(f"unknown remote stage {name!r}; known stages: {known}")
    return spec


def stage_paths(name: str) -> tuple[list[Path], list[Path]]:
    """(inputs, outputs) of a stage as relative Paths, in the order declared."""
    spec = get_stage(name)
    return [Path(p) for p in spec.inputs], [Path(p) for p in spec.outputs]
