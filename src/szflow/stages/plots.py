"""Stage `plots`: data files for `dvc plots show` and PNGs, from the dev and eval predictions, their
metrics, the operating points and the training curves (szflow.plots draws them).

Reads predictions/{dev,eval}/{tracks,baseline_tracks}.npz, metrics/detail/{dev,eval}.json,
models/operating_points.json and metrics/train_curves; for the eval review page also models/best.pt
(provenance) and the eval EDFs of the corpus. Writes plots/ (csv files, png/, the offline HTML
template, and review_eval.html: `szflow review` of a few eval recordings).
"""

from __future__ import annotations

import json
from pathlib import Path

from szflow import layout
from szflow.config import Params
from szflow.evaluate import read_tracks
from szflow.plots import SPLITS, write_plots
from szflow.review import review_split, write_review
from szflow.review.sources import errors_first
from szflow.stages.runner import stage_main

# The eval review page holds the timeline recordings and then those with a miss or a false alarm,
# at most this many recordings and hours of EEG: the whole eval split of TUSZ would be gigabytes.
REVIEW_MAX_RECORDINGS = 16
REVIEW_MAX_HOURS = 6.0


def write_eval_review(params: Params, workdir: Path = Path(".")) -> Path:
    """plots/review_eval.html: the review page of the chosen eval recordings."""
    workdir = Path(workdir)
    inputs = review_split(
        workdir / layout.predictions_dir("eval"), workdir / params.data.root, params,
        checkpoint=workdir / layout.BEST_CHECKPOINT, operating_points=workdir / layout.OPERATING_POINTS,
        tracks_name=layout.NETWORK_TRACKS,
        choose=errors_first(params.eval.timeline_recordings, REVIEW_MAX_RECORDINGS, REVIEW_MAX_HOURS))
    return write_review(workdir / layout.EVAL_REVIEW_PAGE, inputs, title="szflow review: eval split")


def _tracks(workdir: Path) -> dict:
    tracks = {}
    for split in SPLITS:
        folder = workdir / layout.predictions_dir(split)
        tracks[(split, "network")] = read_tracks(folder / layout.NETWORK_TRACKS)
        tracks[(split, "baseline")] = read_tracks(folder / layout.BASELINE_TRACKS)
    return tracks


def _curve_files(workdir: Path) -> list[Path]:
    folder = workdir / layout.TRAIN_CURVE_TABLES_DIR
    return sorted(folder.rglob("*.tsv")) if folder.exists() else []


def run(params: Params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    tracks = _tracks(workdir)
    points = json.loads((workdir / layout.OPERATING_POINTS).read_text())
    metrics = {split: json.loads((workdir / layout.split_detail(split)).read_text()) for split in SPLITS}
    out = workdir / layout.PLOTS_DIR
    timelines = write_plots(out, workdir / layout.PLOTS_PNG_DIR, tracks, points, metrics,
                            _curve_files(workdir), params.eval.timeline_recordings)
    review = write_eval_review(params, workdir)
    return {"files": len(list(out.rglob("*"))), "timelines": [p.name for p in timelines], "review": review.name}


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
