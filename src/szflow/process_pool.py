"""Run independent jobs in worker processes, surviving workers that die.

A worker that dies (a segfault in a reader, an OOM kill) breaks a whole `ProcessPoolExecutor`.
`run_in_processes` queues only a few jobs at a time, so the jobs caught in a broken pool are few:
each of them is retried alone in a fresh process (only the culprit fails again), and the rest go
on in a fresh pool.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from szflow.errors import SzflowError

WORKER_DIED = "the worker process died on this job (crash or out of memory)"


def _probe(pool: ProcessPoolExecutor, what: str) -> None:
    """Fail fast, with the likely cause, when worker processes cannot start at all (rather than
    reporting every job as failed)."""
    try:
        pool.submit(os.getpid).result()
    except BrokenProcessPool:
        raise SzflowError(
            f"{what}: worker processes could not start. A script that starts them must do so under "
            "`if __name__ == '__main__':` (workers are spawned and import the main module); or run "
            "with no worker processes") from None


def run_in_processes(function: Callable[[Any], Any], jobs: Sequence[Any], num_workers: int,
                     on_result: Callable[[Any], None], on_failure: Callable[[Any, str], None],
                     what: str = "jobs", died: str = WORKER_DIED) -> None:
    """Call `function(job)` for every job in `num_workers` processes; `on_result(result)` as each
    result arrives, `on_failure(job, reason)` for a job whose worker died or whose result could
    not come back (`died` is the reason of the first). `what` names the work in errors. `function`
    and the jobs must be picklable (a module-level function).
    """
    # 'spawn' starts clean interpreters: no inherited threads or locks (fork + threads can
    # deadlock), and the same behaviour on Linux and macOS.
    context = multiprocessing.get_context("spawn")
    workers = min(num_workers, len(jobs))
    pending = deque(jobs)
    probed = False
    while pending:
        suspects: list = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            if not probed:
                _probe(pool, what)
                probed = True
            in_flight: dict[Future, Any] = {}
            while pending or in_flight:
                # Two per worker keeps every worker busy while bounding what a crash takes down.
                while pending and len(in_flight) < 2 * workers:
                    job = pending.popleft()
                    in_flight[pool.submit(function, job)] = job
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    job = in_flight.pop(future)
                    try:
                        on_result(future.result())
                    except BrokenProcessPool:
                        suspects.append(job)
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that failed to unpickle
                        on_failure(job, f"unexpected {type(exc).__name__}: {exc}")
                if suspects:
                    suspects.extend(in_flight.values())
                    break
        for job in suspects:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as alone:
                try:
                    on_result(alone.submit(function, job).result())
                except BrokenProcessPool:
                    on_failure(job, died)
