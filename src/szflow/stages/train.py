"""Stage `train`: the Detector trained on the train cache, selected on validation patients.

Reads data/cache/train; writes models/best.pt, models/last.pt (resumed from when it belongs to the
same run), models/baseline.json, metrics/train.json and metrics/train_curves. The executor of the
hardware profile calls `run` here or in a Modal container (under torchrun with several GPUs).
"""

from __future__ import annotations

from pathlib import Path

from szflow import layout
from szflow.cache import SplitStore
from szflow.config import Params
from szflow.stages.runner import stage_main
from szflow.train.trainer import Trainer, TrainPaths


def train_paths(workdir: Path) -> TrainPaths:
    return TrainPaths(best=workdir / layout.BEST_CHECKPOINT, last=workdir / layout.LAST_CHECKPOINT,
                      baseline=workdir / layout.BASELINE_MODEL, metrics=workdir / layout.TRAIN_METRICS,
                      curves=workdir / layout.TRAIN_CURVES_DIR, wandb_dir=workdir)


def run(params: Params, workdir: Path = Path(".")) -> dict:
    """Train (or resume) and return the summary written to metrics/train.json."""
    workdir = Path(workdir)
    store = SplitStore.open(workdir / layout.CACHE_DIR, "train")
    return Trainer(params, store, train_paths(workdir)).fit()


def main() -> None:
    stage_main("train")
