"""Preprocessing of one recording, and of a whole corpus in parallel (the `preprocess` stage).

Per recording, `<out>/<split>/<recording_id>.npy` holds the preprocessed signal as float16 with
shape (19, n) (channel-major, electrodes in `ELECTRODES` order, 256 Hz), and
`<out>/<split>/<recording_id>.json` its metadata (duration, patient, seizure intervals and types,
params hash, input file fingerprints). Channel-major is the layout of the cache (see
`szflow.cache`), so building the cache is a row-by-row copy. The JSON is written after the array,
both atomically, so a JSON that exists marks a complete recording: a restarted run skips it.
`<out>/report.csv` lists every recording with status ok/failed and the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from szflow.config import Params, PreprocessConfig, corpus_root
from szflow.errors import InputFileError, SzflowError
from szflow.io_utils import atomic_path, atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from szflow.signal.filters import design_filter, min_filter_length, zero_phase_filter
from szflow.signal.labels import interval_samples
from szflow.signal.montage import common_average_reference
from szflow.signal.normalise import normalise
from szflow.signal.resample import resample_channels

log = logging.getLogger("szflow.preprocess")

# Bumped when the files written here change meaning; a restarted run redoes older outputs.
FORMAT_VERSION = 1
N_CHANNELS = 19
STORAGE_DTYPE = np.float16
LAYOUT = "channels x samples (19, n), float16, electrodes in szflow.data.edf.ELECTRODES order"
REPORT_NAME = "report.csv"
MANIFEST_NAME = "manifest.json"
REPORT_COLUMNS = [
    "recording_id", "split", "patient", "session", "montage", "status", "reason", "resumed",
    "duration_s", "n_samples", "n_seizures", "seizure_s", "seconds", "edf_path", "annotation_path",
]
# report.csv is part of the DVC output, so it holds only what the inputs determine: how long a
# recording took and whether this run resumed it differ from run to run (they are in the returned
# report and the log). With them in the file, two identical runs gave two DVC objects.
RUN_ONLY_COLUMNS = ("resumed", "seconds")
# Bytes of an input file read per hash update when fingerprinting it.
_HASH_BLOCK = 1 << 20


class TooManyFailuresError(SzflowError):
    """More than `preprocess.max_failed_fraction` of the recordings could not be preprocessed."""


# ----------------------------------------------------------------------------- one recording
def preprocess_recording(recording, cfg: PreprocessConfig) -> np.ndarray:
    """The 19 electrodes of `recording` (an `EegRecording`) -> (19, n) float32 at cfg.sample_rate_hz.

    Steps: resample every electrode from its own rate (polyphase), common average reference,
    zero-phase band-pass + notch, per-channel robust normalisation clipped to +-cfg.clip.
    Raises `InputFileError` (naming the file) for a recording too short to filter.
    """
    rate = float(cfg.sample_rate_hz)
    block = resample_channels(recording.signals, recording.sample_rates, rate)
    if block.shape[0] != N_CHANNELS:
        raise InputFileError(recording.path, f"expected {N_CHANNELS} electrodes, got {block.shape[0]}")
    sos = design_filter(rate, tuple(cfg.bandpass_hz), cfg.bandpass_order, cfg.notch_hz, cfg.notch_quality)
    if block.shape[1] < min_filter_length(sos):
        raise InputFileError(recording.path, f"too short to filter: {block.shape[1]} samples at {rate:g} Hz")
    # `resample_channels` returns a new array we own, so the reference is subtracted in place.
    common_average_reference(block)
    filtered = zero_phase_filter(block, sos)
    del block  # a 1-hour recording is 70 MB per float32 copy: keep at most two alive
    normalise(filtered, cfg.normalisation, cfg.clip)
    return filtered


# ----------------------------------------------------------------------------- corpus job
@dataclass(frozen=True)
class RecordingJob:
    """Everything a worker needs for one recording (small and picklable)."""

    recording_id: str
    split: str
    patient: str
    session: str
    montage: str
    edf_path: str
    annotation_path: str | None
    types_path: str | None
    out_dir: str
    cfg: PreprocessConfig
    params_hash: str

    @property
    def signal_path(self) -> Path:
        return recording_paths(self.out_dir, self.split, self.recording_id)[0]

    @property
    def meta_path(self) -> Path:
        return recording_paths(self.out_dir, self.split, self.recording_id)[1]


@dataclass
class JobResult:
    """The report row of one recording (what a worker sends back: never the signal)."""

    recording_id: str
    split: str
    patient: str = ""
    session: str = ""
    montage: str = ""
    status: str = "failed"
    reason: str = ""
    resumed: bool = False
    duration_s: float = float("nan")
    n_samples: int = 0
    n_seizures: int = 0
    seizure_s: float = 0.0
    seconds: float = 0.0
    edf_path: str = ""
    annotation_path: str = ""

    def row(self) -> dict:
        return {name: getattr(self, name) for name in REPORT_COLUMNS}


def _file_fingerprint(path: str | None) -> list | None:
    """[size, sha1 of the content] of an input: a changed input is preprocessed again on a restarted run.

    Content, not mtime: the fingerprint is written into each recording's metadata, which DVC
    tracks, so it must be the same for the same corpus in every clone (a fresh `dvc repro`
    writes the synthetic EDFs anew, with new mtimes). Hashing reads ~1 GB/s here, a small
    fraction of the preprocessing itself.
    """
    if not path:
        return None
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return [size, digest.hexdigest()]


def _source_fingerprint(job: RecordingJob) -> dict:
    return {
        "edf": _file_fingerprint(job.edf_path),
        "annotation": _file_fingerprint(job.annotation_path),
        "types": _file_fingerprint(job.types_path),
    }


def _result_from_meta(job: RecordingJob, meta: dict, resumed: bool, seconds: float) -> JobResult:
    intervals = meta["seizure_intervals"]
    return JobResult(
        recording_id=job.recording_id, split=job.split, patient=job.patient, session=job.session,
        montage=job.montage, status="ok", reason="", resumed=resumed,
        duration_s=float(meta["duration_s"]), n_samples=int(meta["n_samples"]),
        n_seizures=len(intervals), seizure_s=float(sum(stop - start for start, stop in intervals)),
        seconds=seconds, edf_path=job.edf_path, annotation_path=job.annotation_path or "",
    )


def completed_meta(job: RecordingJob) -> dict | None:
    """The metadata of an earlier run's output for `job` if it is complete and current, else None."""
    try:
        meta = json.loads(job.meta_path.read_text(encoding="utf-8"))
        if (meta.get("format_version") != FORMAT_VERSION or meta.get("params_hash") != job.params_hash
                or meta.get("source") != _source_fingerprint(job)):
            return None
        array = np.load(job.signal_path, mmap_mode="r")
        if array.shape != (N_CHANNELS, meta["n_samples"]) or array.dtype != STORAGE_DTYPE:
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recording_paths(out_dir: str | Path, split: str, recording_id: str) -> tuple[Path, Path]:
    """(signal .npy, metadata .json) of one recording in a preprocess folder."""
    folder = Path(out_dir) / split
    return folder / f"{recording_id}.npy", folder / f"{recording_id}.json"


def write_recording(out_dir: str | Path, meta: dict, block: np.ndarray) -> None:
    """Write one recording's (19, n) signal as float16, then its metadata (both atomic).

    `meta` needs at least recording_id, split, patient, duration_s, n_samples, seizure_intervals,
    seizure_types and params_hash (see `process_recording` for the full set).
    """
    signal_path, meta_path = recording_paths(out_dir, meta["split"], meta["recording_id"])
    with atomic_path(signal_path) as tmp, open(tmp, "wb") as handle:
        # np.save would append '.npy' to the temporary name; write_array writes to the handle.
        np.lib.format.write_array(handle, block.astype(STORAGE_DTYPE, copy=False), allow_pickle=False)
    # Written last: its presence marks the recording as complete for a restarted run.
    atomic_write_json(meta_path, meta)


def run_summary_files(report: pd.DataFrame, cfg: PreprocessConfig, params_hash: str) -> dict[str, bytes]:
    """The bytes of a preprocess folder's `report.csv` and `manifest.json` (here or from Modal)."""
    n_ok = int((report["status"] == "ok").sum())
    manifest = {
        "format_version": FORMAT_VERSION,
        "params_hash": params_hash,
        "preprocess": cfg.model_dump(mode="json"),
        "sample_rate_hz": float(cfg.sample_rate_hz),
        "layout": LAYOUT,
        "recordings_ok": n_ok,
        "recordings_failed": len(report) - n_ok,
    }
    return {
        REPORT_NAME: report.drop(columns=list(RUN_ONLY_COLUMNS), errors="ignore").to_csv(index=False).encode(),
        MANIFEST_NAME: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
    }


def write_run_summary(out_dir: str | Path, report: pd.DataFrame, cfg: PreprocessConfig, params_hash: str) -> Path:
    """Write `report.csv` and `manifest.json` of a preprocess folder; returns the report's path."""
    out_dir = Path(out_dir)
    for name, data in run_summary_files(report, cfg, params_hash).items():
        atomic_write_bytes(out_dir / name, data)
    return out_dir / REPORT_NAME


def process_recording(job: RecordingJob) -> JobResult:
    """Preprocess one recording and write its outputs. Never raises for bad input: a failure is a
    `JobResult` with status 'failed' and the reason, so one broken file cannot stop a batch."""
    from szflow.data.annotations import read_annotation
    from szflow.data.edf import ELECTRODES, read_eeg

    started = time.perf_counter()
    result = JobResult(recording_id=job.recording_id, split=job.split, patient=job.patient,
                       session=job.session, montage=job.montage, edf_path=job.edf_path,
                       annotation_path=job.annotation_path or "")
    try:
        meta = completed_meta(job)
        if meta is not None:
            return _result_from_meta(job, meta, resumed=True, seconds=time.perf_counter() - started)
        if not job.annotation_path:
            raise InputFileError(job.edf_path, "no annotation file (.csv_bi / _events.tsv) beside the EDF")
        annotation = read_annotation(job.annotation_path)
        # TUSZ: the per-channel .csv names the seizure types; the .csv_bi only says 'seiz'.
        types = read_annotation(job.types_path).seizure_types() if job.types_path else annotation.seizure_types()
        recording = read_eeg(job.edf_path, expected_duration_s=annotation.duration_s)
        block = preprocess_recording(recording, job.cfg)
        n_samples = int(block.shape[1])
        rate = float(job.cfg.sample_rate_hz)
        intervals = [[float(start), float(stop)] for start, stop in annotation.seizure_intervals()]
        meta = {
            "format_version": FORMAT_VERSION,
            "recording_id": job.recording_id,
            "split": job.split,
            "patient": job.patient,
            "session": job.session,
            "montage": job.montage,
            "edf_path": job.edf_path,
            "annotation_path": job.annotation_path,
            "duration_s": float(recording.duration_s),
            "n_samples": n_samples,
            "sample_rate_hz": rate,
            "source_sample_rates_hz": sorted({float(r) for r in recording.sample_rates}),
            "channels": list(ELECTRODES),
            "layout": LAYOUT,
            "seizure_intervals": intervals,
            "seizure_samples": [list(span) for span in interval_samples(intervals, n_samples, rate)],
            "seizure_types": list(types),
            "params_hash": job.params_hash,
            "source": _source_fingerprint(job),
        }
        write_recording(job.out_dir, meta, block)
        del block
        return _result_from_meta(job, meta, resumed=False, seconds=time.perf_counter() - started)
    except InputFileError as exc:
        result.reason = f"{exc.path}: {exc.reason}"
    except MemoryError:
        result.reason = "out of memory"
    except Exception as exc:  # noqa: BLE001 - a batch job reports every other failure and goes on
        result.reason = f"unexpected {type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return result


# ----------------------------------------------------------------------------- corpus
def make_jobs(table: pd.DataFrame, out_dir: Path, cfg: PreprocessConfig, params_hash: str
              ) -> tuple[list[RecordingJob], list[JobResult]]:
    """One job per recording; recordings that cannot even be attempted come back as failures."""
    jobs: list[RecordingJob] = []
    failed: list[JobResult] = []
    seen: dict[tuple[str, str], str] = {}
    for row in table.itertuples(index=False):
        job = RecordingJob(
            recording_id=str(row.recording_id), split=str(row.split), patient=str(row.patient),
            session=str(row.session or ""), montage=str(row.montage or ""), edf_path=str(row.edf_path),
            annotation_path=row.annotation_path or None, types_path=row.types_path or None,
            out_dir=str(out_dir), cfg=cfg, params_hash=params_hash,
        )
        key = (job.split, job.recording_id)
        if key in seen:
            # Both would write the same output files.
            failed.append(failed_result(job, f"duplicate recording id in split {job.split} (also {seen[key]})"))
            continue
        seen[key] = job.edf_path
        jobs.append(job)
    return jobs, failed


def failed_result(job: RecordingJob, reason: str) -> JobResult:
    """The report row of a recording that failed for `reason`."""
    return JobResult(recording_id=job.recording_id, split=job.split, patient=job.patient, session=job.session,
                     montage=job.montage, edf_path=job.edf_path, annotation_path=job.annotation_path or "",
                     reason=reason)


# Older names, used by szflow.remote.modal_app.
_jobs = make_jobs
_failed = failed_result


def _probe(pool: ProcessPoolExecutor) -> None:
    """Fail fast, with the likely cause, when worker processes cannot start at all (rather than
    reporting every recording as failed)."""
    try:
        pool.submit(os.getpid).result()
    except BrokenProcessPool:
        raise SzflowError(
            "preprocess: worker processes could not start. A script that calls run_preprocess with "
            "preprocess.num_workers > 0 must do so under `if __name__ == '__main__':` (workers are "
            "spawned and import the main module); or set preprocess.num_workers: 0") from None


def _run_in_pool(jobs: list[RecordingJob], num_workers: int, on_result: Callable[[JobResult], None]) -> None:
    """Run jobs in `num_workers` processes, reporting each result as it arrives.

    A worker that dies (segfault in a reader, OOM kill) breaks the whole pool. Only a few jobs are
    queued at a time, so the ones caught in a broken pool are few: each of them is retried alone in
    a fresh process (only the culprit fails again), and the rest go on in a fresh pool.
    """
    # 'spawn' starts clean interpreters: no inherited threads or locks (fork + threads can
    # deadlock), and the same behaviour on Linux and macOS.
    context = multiprocessing.get_context("spawn")
    workers = min(num_workers, len(jobs))
    pending = deque(jobs)
    probed = False
    while pending:
        suspects: list[RecordingJob] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            if not probed:
                _probe(pool)
                probed = True
            in_flight: dict[Future, RecordingJob] = {}
            while pending or in_flight:
                # Two per worker keeps every worker busy while bounding what a crash takes down.
                while pending and len(in_flight) < 2 * workers:
                    job = pending.popleft()
                    in_flight[pool.submit(process_recording, job)] = job
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    job = in_flight.pop(future)
                    try:
                        on_result(future.result())
                    except BrokenProcessPool:
                        suspects.append(job)
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that failed to unpickle
                        on_result(failed_result(job, f"unexpected {type(exc).__name__}: {exc}"))
                if suspects:
                    suspects.extend(in_flight.values())
                    break
        for job in suspects:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as alone:
                try:
                    on_result(alone.submit(process_recording, job).result())
                except BrokenProcessPool:
                    on_result(failed_result(job, "the worker process died while preprocessing this recording "
                                           "(crash or out of memory)"))


def failure_message(report: pd.DataFrame, limit: float, report_path: Path, shown: int = 5) -> str | None:
    """The error message when too many recordings failed, else None."""
    total = len(report)
    failed = report[report["status"] != "ok"]
    if total == 0 or len(failed) / total <= limit:
        return None
    examples = "; ".join(f"{r.recording_id}: {r.reason}" for r in failed.head(shown).itertuples())
    more = f" (and {len(failed) - shown} more)" if len(failed) > shown else ""
    return (f"{len(failed)} of {total} recordings failed to preprocess "
            f"({len(failed) / total:.1%} > preprocess.max_failed_fraction {limit:.1%}); "
            f"see {report_path}. Failures: {examples}{more}")


def run_preprocess(params: Params, out_dir: str | Path = Path("data/preprocess"), progress: bool = True,
                   corpus: pd.DataFrame | None = None) -> pd.DataFrame:
    """Preprocess every recording of every split of the corpus; return the report (also written to
    `<out_dir>/report.csv`). Raises `TooManyFailuresError` (after writing the report) when more
    than `preprocess.max_failed_fraction` of the recordings failed. `corpus` overrides discovery.
    """
    from szflow.data.discover import discover_corpus

    cfg = params.preprocess
    out_dir = Path(out_dir)
    if not out_dir.is_absolute():
        out_dir = Path(params.root) / out_dir
    # Fail on a bad filter setting before starting any worker (raises ConfigError).
    design_filter(float(cfg.sample_rate_hz), tuple(cfg.bandpass_hz), cfg.bandpass_order, cfg.notch_hz,
                  cfg.notch_quality)
    table = corpus if corpus is not None else discover_corpus(corpus_root(params), source=params.data.source)
    params_hash = params.section_hash("preprocess")
    jobs, results = make_jobs(table, out_dir, cfg, params_hash)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir, recursive=True)

    bar = tqdm(total=len(jobs) + len(results), desc="preprocess", unit="rec", disable=not progress)
    bar.update(len(results))

    def on_result(result: JobResult) -> None:
        results.append(result)
        if result.status != "ok":
            log.warning("skipped %s (%s): %s", result.recording_id, result.split, result.reason)
        bar.update(1)

    try:
        if cfg.num_workers == 0 or len(jobs) <= 1:
            for job in jobs:
                on_result(process_recording(job))
        else:
            _run_in_pool(jobs, cfg.num_workers, on_result)
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
