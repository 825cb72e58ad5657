"""Stage `plots`: data files for `dvc plots show` and PNGs, from the dev and eval predictions, their
metrics, the operating points and the training curves (szflow.plots draws them).

Reads predictions/{dev,eval}/{tracks,baseline_tracks}.npz, metrics/{dev,eval}.json,
models/operating_points.json and metrics/train_curves. Writes plots/ (csv files, png/, and the
offline HTML template).
"""

from __future__ import annotations

import json
from pathlib import Path

from szflow import layout
from szflow.config import Params
from szflow.evaluate import read_tracks
from szflow.plots import SPLITS, write_plots
from szflow.stages.runner import stage_main


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
    metrics = {split: json.loads((workdir / layout.split_metrics(split)).read_text()) for split in SPLITS}
    out = workdir / layout.PLOTS_DIR
    timelines = write_plots(out, workdir / layout.PLOTS_PNG_DIR, tracks, points, metrics,
                            _curve_files(workdir), params.eval.timeline_recordings)
    return {"files": len(list(out.rglob("*"))), "timelines": [p.name for p in timelines]}


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
