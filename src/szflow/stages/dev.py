"""Stage `dev`: predict the dev split with models/best.pt and the baseline, tune the post-processing
for each target false-alarm rate, freeze the result.

Reads data/cache/dev, models/best.pt, models/baseline.json. Writes models/operating_points.json,
predictions/dev (tracks.npz, baseline_tracks.npz, fa<target>/{csv_bi,tsv}/...), metrics/dev.json (headline)
and metrics/detail/dev.json (every score).
A GPU stage: `main()` goes through the profile's executor, which calls `run` here or on Modal.
"""

from __future__ import annotations

from pathlib import Path

from szflow import layout
from szflow.config import Params
from szflow.evaluate import split_tracks, tune
from szflow.io_utils import atomic_write_json
from szflow.stages.runner import stage_main
from szflow.stages.split_outputs import write_split_outputs

SPLIT = "dev"


def run(params: Params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    tracks, base_tracks, checkpoint = split_tracks(params, workdir / layout.CACHE_DIR, SPLIT,
                                                   workdir / layout.BEST_CHECKPOINT,
                                                   workdir / layout.BASELINE_MODEL)
    points = tune(params, tracks)
    base_points = tune(params, base_tracks)
    atomic_write_json(workdir / layout.OPERATING_POINTS, {
        "tuned_on": SPLIT, "frame_rate_hz": params.model.frame_rate_hz,
        "checkpoint_step": int(checkpoint.step), "detector": points, "baseline": base_points,
    })
    return write_split_outputs(workdir, SPLIT, tracks, base_tracks, points, base_points, checkpoint)


def main() -> None:
    stage_main(SPLIT)


if __name__ == "__main__":
    main()
