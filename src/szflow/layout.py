"""Every path the DVC pipeline reads or writes, relative to the project root, written out once.

`dvc.yaml` declares the same paths (tests/test_layout.py checks that the two agree); the stage
drivers (`szflow.stages`), the remote executors and the tests take them from here. Libraries below
the stage drivers never name a pipeline path: they take directories and files as arguments.
"""

from __future__ import annotations

from pathlib import Path

SYNTH_DIR = Path("data/synth")
# Written instead of a corpus when data.source is a real corpus (the DVC out must exist).
SYNTH_SKIPPED = SYNTH_DIR / "SKIPPED.txt"
PREPROCESS_DIR = Path("data/preprocess")
PREPROCESS_REPORT = PREPROCESS_DIR / "report.csv"
CACHE_DIR = Path("data/cache")

MODELS_DIR = Path("models")
BEST_CHECKPOINT = MODELS_DIR / "best.pt"
LAST_CHECKPOINT = MODELS_DIR / "last.pt"
BASELINE_MODEL = MODELS_DIR / "baseline.json"
OPERATING_POINTS = MODELS_DIR / "operating_points.json"

METRICS_DIR = Path("metrics")
TRAIN_METRICS = METRICS_DIR / "train.json"
TRAIN_CURVES_DIR = METRICS_DIR / "train_curves"
# Where DVCLive writes one .tsv per logged metric inside TRAIN_CURVES_DIR.
TRAIN_CURVE_TABLES_DIR = TRAIN_CURVES_DIR / "plots" / "metrics"

PREDICTIONS_DIR = Path("predictions")
# Inside predictions/<split>: the probability tracks of the network and of the baseline.
NETWORK_TRACKS = "tracks.npz"
BASELINE_TRACKS = "baseline_tracks.npz"
PLOTS_DIR = Path("plots")
PLOTS_PNG_DIR = PLOTS_DIR / "png"
# The review page of the eval split (`szflow review`), beside the PNGs.
EVAL_REVIEW_PAGE = PLOTS_DIR / "review_eval.html"

PARAMS_FILE = Path("params.yaml")
PROFILES_DIR = Path("params")


def cache_split_dir(split: str) -> Path:
    return CACHE_DIR / split


def predictions_dir(split: str) -> Path:
    return PREDICTIONS_DIR / split


def split_metrics(split: str) -> Path:
    """metrics/dev.json, metrics/eval.json: the headline numbers, the DVC metrics of the split."""
    return METRICS_DIR / f"{split}.json"


def split_detail(split: str) -> Path:
    """metrics/detail/dev.json, metrics/detail/eval.json: every score of the split (a tracked output,
    not a DVC metric, so `dvc exp show` stays readable)."""
    return METRICS_DIR / "detail" / f"{split}.json"
