"""Training curves to DVCLive (always) and Weights & Biases (mode from the profile or WANDB_MODE).

The W&B API key is read by wandb itself from the environment (WANDB_API_KEY, e.g. a Modal Secret);
szflow never reads it into a variable, logs it, or writes it anywhere. Online mode without a key is
a clear error before any training work, instead of an interactive login prompt in a batch job.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from szflow.errors import SzflowError

log = logging.getLogger("szflow.train")

WANDB_MODES = ("online", "offline", "disabled")
# wandb's own aliases for its modes.
_WANDB_ALIASES = {"dryrun": "offline", "run": "online"}


def resolve_wandb_mode(profile_mode: str) -> str:
    """WANDB_MODE from the environment wins over the profile (tests and users force offline with it)."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    mode = _WANDB_ALIASES.get(env, env) if env else profile_mode
    if mode not in WANDB_MODES:
        raise SzflowError(f"W&B mode {mode!r} (from WANDB_MODE or hardware.wandb_mode) is not one of {WANDB_MODES}")
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise SzflowError(
            "W&B mode is online but WANDB_API_KEY is not set in the environment; "
            "set it (a Modal Secret on Modal) or use WANDB_MODE=offline / hardware.wandb_mode: disabled"
        )
    return mode


def _complete_row(row: dict, last_step: int) -> bool:
    """A whole row (every field present, step an integer) of a step up to `last_step`. A resume
    copy of the curves taken while a row was being appended can end in half a row; it belongs to a
    step after the checkpoint and is dropped with them."""
    if any(value in (None, "") for value in row.values()) or None in row:
        return False
    try:
        return int(row["step"]) <= last_step
    except ValueError:
        return False


def _trim_curves(curves_dir: Path, last_step: int) -> None:
    """Drop curve rows logged after `last_step`: a resumed run re-logs them from its checkpoint."""
    summary = curves_dir / "metrics.json"
    try:
        json.loads(summary.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except ValueError:
        # Copied while DVCLive rewrote it: the resumed run rewrites it from what it logs.
        log.warning("ignoring unreadable %s from the interrupted run", summary)
        summary.unlink()
    metrics_dir = curves_dir / "plots" / "metrics"
    if not metrics_dir.exists():
        return
    for tsv in metrics_dir.rglob("*.tsv"):
        with open(tsv, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            rows = list(reader)
            fields = reader.fieldnames
        if not fields:
            continue
        kept = [row for row in rows if _complete_row(row, last_step)]
        with open(tsv, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fields, delimiter="\t", lineterminator=os.linesep)
            writer.writeheader()
            writer.writerows(kept)


class RunLogger:
    """One sink for scalar metrics keyed by optimizer step. Metric names are strings, values numbers.

    `history` holds every DVCLive row logged ([step, {name: value}]) so that last.pt can carry it. A
    run resumed with the history of its checkpoint rewrites the curves from it (rows up to
    `resume_step`) before it logs more: DVC deletes a stage's outputs before running it, so a train
    stage that resumes from last.pt (interrupted, or re-run at its last step) would otherwise keep
    only the steps after the resume. Without a history (a checkpoint from before it), the curves
    left on disk are trimmed to `resume_step` and continued.
    """

    def __init__(
        self,
        curves_dir: str | Path,
        *,
        wandb_mode: str,
        config: Mapping[str, Any] | None = None,
        resume_step: int | None = None,
        wandb_run_id: str | None = None,
        wandb_dir: str | Path | None = None,
        wandb_project: str | None = None,
        history: list | None = None,
    ):
        from dvclive import Live

        self.curves_dir = Path(curves_dir)
        self.history: list[list] = []
        replay = resume_step is not None and history is not None
        if replay:
            # The checkpoint's history is the record; what is on disk may hold steps it replays.
            shutil.rmtree(self.curves_dir, ignore_errors=True)
        resume = not replay and resume_step is not None and self.curves_dir.exists()
        if resume:
            _trim_curves(self.curves_dir, int(resume_step))
        # dvcyaml=False / save_dvc_exp=False: inside a DVC stage Live must not rewrite dvc.yaml or
        # create experiments (DESIGN.md §2); plots are declared once in dvc.yaml.
        self.live = Live(dir=str(self.curves_dir), resume=resume, dvcyaml=False, save_dvc_exp=False)
        if replay:
            for step, metrics in history:
                if int(step) <= int(resume_step):
                    self._log_live(int(step), metrics)
            self.live.make_summary()
        self.wandb_mode = wandb_mode
        self.run = None
        if wandb_mode != "disabled":
            import wandb

            kwargs: dict[str, Any] = {
                "project": wandb_project or os.environ.get("WANDB_PROJECT", "szflow"),
                "mode": wandb_mode,
                "config": dict(config or {}),
            }
            if not os.environ.get("WANDB_DIR") and wandb_dir is not None:
                Path(wandb_dir).mkdir(parents=True, exist_ok=True)
                kwargs["dir"] = str(wandb_dir)
            if wandb_run_id:
                # A resumed training run continues the same W&B run rather than starting a second one.
                kwargs.update(id=wandb_run_id, resume="allow")
            self.run = wandb.init(**kwargs)

    @property
    def wandb_run_id(self) -> str | None:
        return None if self.run is None else str(self.run.id)

    def log(self, step: int, metrics: Mapping[str, float | int],
            timings: Mapping[str, float | int] | None = None) -> None:
        """`metrics` go to DVCLive and W&B; `timings` (wall-clock values such as windows/s) to W&B only.

        The DVCLive files are a DVC-tracked output that the plots stage depends on; with nothing
        machine-dependent in them, two identical runs give identical files, and DVC restores the
        stages after train from the run-cache instead of re-running them.
        """
        self._log_live(step, metrics)
        if self.run is not None:
            self.run.log({str(k): float(v) for k, v in {**metrics, **(timings or {})}.items()}, step=int(step))

    def _log_live(self, step: int, metrics: Mapping[str, float | int]) -> None:
        row = {str(name): float(value) for name, value in metrics.items()}
        self.history.append([int(step), row])
        self.live.step = int(step)
        for name, value in row.items():
            self.live.log_metric(name, value)

    def flush(self) -> None:
        self.live.make_summary()

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """Final values (best step, best scores) for the W&B run summary."""
        if self.run is not None:
            for key, value in metrics.items():
                self.run.summary[str(key)] = value

    def close(self, failed: bool = False) -> None:
        self.live.make_summary()
        self.live.end()
        if self.run is not None:
            import wandb

            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
            # finish() returns before wandb's service process has written the run file; teardown
            # waits for it, so an offline run is complete on disk when the stage returns (a
            # container or DVC may copy or cache the outputs right away).
            wandb.teardown()
