"""Shared entry of the stage drivers: load params, run, report errors in one line (exit 1)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from szflow.config import Params, load_params
from szflow.errors import SzflowError


def stage_main(run: Callable[[Params], Any] | str) -> None:
    """Run a stage with the project's params. `run` is a function of Params, or the name of a GPU
    stage ('train', 'dev', 'eval') that goes through the executor of the active hardware profile."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(".")
        if isinstance(run, str):
            from szflow.remote import run_stage

            run_stage(run, params)
        else:
            run(params)
    except SzflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
