"""Shared entry of the stage drivers: load params, run, report errors in one line (exit 1).

CPU stages run their driver in this process; GPU stages (train, dev, eval) go through the executor
of the active hardware profile, which calls the same driver here or in a Modal container.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from szflow.config import Params, load_params
from szflow.errors import SzflowError
from szflow.remote.executor import run_stage


def stage_main(run: Callable[[Params, Path], Any] | str) -> None:
    """Run a stage in the project folder (the current directory). `run` is a driver's
    `run(params, workdir)`, or the name of a GPU stage ('train', 'dev', 'eval') that goes through
    the executor of the active hardware profile."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    workdir = Path(".")
    try:
        params = load_params(workdir)
        if isinstance(run, str):
            run_stage(run, params, workdir)
        else:
            run(params, workdir)
    except SzflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
