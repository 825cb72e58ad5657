"""Stage `preprocess`: every recording of the corpus -> data/preprocess (one .npy + .json each).

Also writes `data/preprocess/report.csv` (every recording, ok/failed, reason) and `manifest.json`.
Fails (exit 1) only when more than `preprocess.max_failed_fraction` of the recordings failed;
the report is written first.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from szflow.config import Params, corpus_root
from szflow.data.discover import discover_corpus
from szflow.io_utils import remove_stale_temporaries
from szflow.layout import PREPROCESS_DIR
from szflow.process_pool import run_in_processes
from szflow.signal.chain import chain_filter
from szflow.signal.jobs import (
    REPORT_COLUMNS,
    JobResult,
    TooManyFailuresError,
    failed_result,
    failure_message,
    make_jobs,
    process_recording,
    write_run_summary,
)
from szflow.stages.runner import stage_main

log = logging.getLogger("szflow.preprocess")
WORKER_DIED = "the worker process died while preprocessing this recording (crash or out of memory)"


def preprocess_corpus(params: Params, out_dir: Path, progress: bool = True,
                      corpus: pd.DataFrame | None = None) -> pd.DataFrame:
    """Preprocess every recording of every split of the corpus into `out_dir`; return the report
    (also written to `<out_dir>/report.csv`). Raises `TooManyFailuresError` (after writing the
    report) when more than `preprocess.max_failed_fraction` failed. `corpus` overrides discovery.
    """
    cfg = params.preprocess
    out_dir = Path(out_dir)
    chain_filter(cfg)  # a bad filter setting fails here (ConfigError), before any worker starts
    table = corpus if corpus is not None else discover_corpus(corpus_root(params), source=params.data.source)
    params_hash = params.section_hash("preprocess")
    jobs, results = make_jobs(table, out_dir, cfg, params_hash)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir, recursive=True)

    bar = tqdm(total=len(jobs) + len(results), desc="preprocess", unit="rec", disable=not progress)
    bar.update(len(results))

    def on_result(job_results: list[JobResult]) -> None:
        # One row per recording, or per continuous segment of an EDF+D file.
        for result in job_results:
            results.append(result)
            if result.status != "ok":
                log.warning("skipped %s (%s): %s", result.recording_id, result.split, result.reason)
        bar.update(1)

    try:
        if cfg.num_workers == 0 or len(jobs) <= 1:
            for job in jobs:
                on_result(process_recording(job))
        else:
            run_in_processes(process_recording, jobs, cfg.num_workers, on_result,
                             lambda job, reason: on_result([failed_result(job, reason)]),
                             what="preprocess (preprocess.num_workers > 0)", died=WORKER_DIED)
    finally:
        bar.close()

    report = pd.DataFrame([r.row() for r in results], columns=REPORT_COLUMNS)
    report = report.sort_values(["split", "recording_id"], kind="stable").reset_index(drop=True)
    report_path = write_run_summary(out_dir, report, cfg, params_hash)
    n_ok = int((report["status"] == "ok").sum())
    log.info("preprocessed %d of %d recordings (%d resumed) into %s in %.1f s of worker time", n_ok,
             len(report), int(report["resumed"].sum()), out_dir, float(report["seconds"].sum()))
    message = failure_message(report, cfg.max_failed_fraction, report_path)
    if message:
        raise TooManyFailuresError(message)
    return report


def run(params: Params, workdir: Path = Path("."), progress: bool = True) -> dict:
    """The stage: the corpus of `params` -> `<workdir>/data/preprocess`; returns the counts."""
    report = preprocess_corpus(params, Path(workdir) / PREPROCESS_DIR, progress=progress)
    return {"recordings": len(report), "ok": int((report["status"] == "ok").sum()),
            "failed": int((report["status"] != "ok").sum()), "resumed": int(report["resumed"].sum())}


def main() -> None:
    stage_main(run)
