"""Stage `params`: write, for each stage, the values of the params it reads (szflow.config.STAGE_PARAMS)
to data/params/<stage>.json, the hardware profile resolved.

Each stage depends on its file instead of on params sections: DVC re-runs a stage when its file's
bytes change, so a change re-runs exactly the stages that read the changed key, and `dvc exp show`
lists only the few params dvc.yaml declares for people to compare (docs/metrics.md).
"""

from __future__ import annotations

from pathlib import Path

from szflow import layout
from szflow.config import STAGE_PARAMS, Params, stage_snapshot
from szflow.io_utils import atomic_write_json
from szflow.stages.runner import stage_main


def run(params: Params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    for stage in STAGE_PARAMS:
        atomic_write_json(workdir / layout.stage_params(stage), stage_snapshot(params, stage))
    return {"stages": sorted(STAGE_PARAMS)}


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
