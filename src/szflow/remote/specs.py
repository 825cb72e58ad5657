"""Specs of the GPU stages (train, dev, eval) as data: which driver function each runs, which files
it reads and writes, which files a retried container must find again.

Paths come from `szflow.layout`, the one place they are written out (tests/test_layout.py checks
them against dvc.yaml). The executors use the specs to know what to upload to a remote container
and which outputs to bring back. Driver functions are named by import path and resolved with
importlib only when a stage runs: the remote layer never imports the stage drivers (which sit above
it) statically, and importing this module never imports torch or the training code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from szflow import layout
from szflow.errors import SzflowError

# Every stage driver's core function has this shape: read fixed inputs under `workdir`, write
# fixed outputs under `workdir`, return a small JSON-able summary.
CoreFunction = Callable[..., dict]


def _posix(*paths: Path) -> tuple[str, ...]:
    return tuple(path.as_posix() for path in paths)


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
    config_inputs: tuple[str, ...] = _posix(layout.PARAMS_FILE, layout.PROFILES_DIR)
    # Outputs (files or folders) that a retried container must find again to resume after a
    # preemption and still finish with the outputs of an uninterrupted run: synced to the volume
    # while the stage runs, restored into the workdir before it starts. The first is the checkpoint
    # the stage resumes from; the rest are restored only with it, and are outputs a resumed run
    # cannot write again (best.pt is written only when validation improves; curve rows are only
    # appended).
    resume_files: tuple[str, ...] = ()
    # Whether the stage can run as several processes (torchrun) when hardware.gpus > 1.
    distributed: bool = False
    description: str = ""

    def resolve(self) -> CoreFunction:
        return resolve_function(self.function)

    @property
    def modal_function_name(self) -> str:
        return f"{self.name}_stage"

    def paths(self) -> tuple[list[Path], list[Path]]:
        """(inputs, outputs) as relative Paths, in the order declared."""
        return [Path(p) for p in self.inputs], [Path(p) for p in self.outputs]


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
        function="szflow.stages.train:run",
        inputs=_posix(layout.cache_split_dir("train")),
        outputs=_posix(layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT, layout.BASELINE_MODEL,
                       layout.TRAIN_METRICS, layout.TRAIN_CURVES_DIR),
        resume_files=_posix(layout.LAST_CHECKPOINT, layout.BEST_CHECKPOINT, layout.TRAIN_CURVES_DIR),
        distributed=True,
        description="train the detector on the training cache; best.pt chosen on the validation split",
    ),
    "dev": StageSpec(
        name="dev",
        function="szflow.stages.dev:run",
        inputs=_posix(layout.cache_split_dir("dev"), layout.BEST_CHECKPOINT, layout.BASELINE_MODEL),
        outputs=_posix(layout.predictions_dir("dev"), layout.split_metrics("dev"), layout.split_detail("dev"),
                       layout.OPERATING_POINTS),
        description="predict dev, tune post-processing operating points",
    ),
    "eval": StageSpec(
        name="eval",
        function="szflow.stages.eval:run",
        inputs=_posix(layout.cache_split_dir("eval"), layout.BEST_CHECKPOINT, layout.BASELINE_MODEL,
                      layout.OPERATING_POINTS),
        outputs=_posix(layout.predictions_dir("eval"), layout.split_metrics("eval"), layout.split_detail("eval")),
        description="predict eval with the frozen dev operating points, score",
    ),
}

def get_stage(name: str) -> StageSpec:
    spec = GPU_STAGES.get(name)
    if spec is None:
        raise SzflowError(f"unknown remote stage {name!r}; known stages: {sorted(GPU_STAGES)}")
    return spec
