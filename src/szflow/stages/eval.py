"""Stage `eval`: predict the eval split and score it at the operating points frozen on dev (never
tuned on eval).

Reads data/cache/eval, models/best.pt, models/baseline.json, models/operating_points.json. Writes
predictions/eval (tracks.npz, baseline_tracks.npz, fa<target>/{csv_bi,tsv}/...), metrics/eval.json
(headline) and metrics/detail/eval.json (every score).
A GPU stage: `main()` goes through the profile's executor, which calls `run` here or on Modal.
"""

from __future__ import annotations

from pathlib import Path

from szflow import layout
from szflow.config import Params
from szflow.errors import SzflowError
from szflow.evaluate import split_tracks
from szflow.operating_points import read_operating_points
from szflow.stages.runner import stage_main
from szflow.stages.split_outputs import write_split_outputs

SPLIT = "eval"


def run(params: Params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    frozen = read_operating_points(workdir / layout.OPERATING_POINTS)
    tracks, base_tracks, checkpoint = split_tracks(params, workdir / layout.CACHE_DIR, SPLIT,
                                                   workdir / layout.BEST_CHECKPOINT,
                                                   workdir / layout.BASELINE_MODEL)
    if int(frozen.get("checkpoint_step", -1)) != int(checkpoint.step):
        raise SzflowError(
            f"{layout.OPERATING_POINTS} was tuned for checkpoint step {frozen.get('checkpoint_step')}, "
            f"but {layout.BEST_CHECKPOINT} is step {checkpoint.step}: re-run the dev stage"
        )
    return write_split_outputs(workdir, SPLIT, tracks, base_tracks, frozen["detector"], frozen["baseline"],
                               checkpoint)


def main() -> None:
    stage_main(SPLIT)


if __name__ == "__main__":
    main()
