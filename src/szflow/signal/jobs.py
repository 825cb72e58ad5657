"""Preprocessing a corpus one job per recording: outputs, resume and the run report.

Per recording, `<out>/<split>/<recording_id>.npy` holds the preprocessed signal (`szflow.signal.chain`)
as float16 with shape (19, n) (channel-major, electrodes in `ELECTRODES` order, at
`preprocess.sample_rate_hz`), and `<out>/<split>/<recording_id>.json` its metadata (duration,
patient, seizure intervals and types, params hash, input file fingerprints). Channel-major is the
layout of the cache (see `szflow.cache`), so building the cache is a row-by-row copy. The JSON is
written after the array, both atomically, so a JSON that exists marks a complete recording: a
restarted run skips it. `<out>/report.csv` lists every recording with status ok/failed and the
reason, and per recording its montage: the electrodes read directly, reconstructed from bipolar
derivations, and missing (`szflow.data.electrodes`; missing rows are zero, `present` in the JSON
is the 19-character 0/1 mask the cache index carries). `process_recording` is what a worker
process (local or a Modal container) runs.

An EDF+D (discontinuous) file becomes one recording per continuous segment, with id
`<recording_id>_at<onset>s` (`segment_id`), its onset in file time as `offset_s`, and its
annotation's seizures cut to the segment and shifted to segment time: hours scored never include a
gap. Such a file is preprocessed again whenever the stage restarts (resume covers continuous files).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from szflow.config import PreprocessConfig
from szflow.data.annotations import read_annotation
from szflow.data.edf import ELECTRODES, EegRecording, read_eeg_segments, segment_id
from szflow.errors import InputFileError, SzflowError
from szflow.io_utils import atomic_path, atomic_write_bytes, atomic_write_json
from szflow.signal.chain import N_CHANNELS, STORAGE_DTYPE, preprocess_recording, quantise
from szflow.signal.labels import interval_samples

# Bumped when the files written here change meaning; a restarted run redoes older outputs.
FORMAT_VERSION = 2
LAYOUT = f"channels x samples ({N_CHANNELS}, n), float16, electrodes in szflow.data.edf.ELECTRODES order"
REPORT_NAME = "report.csv"
MANIFEST_NAME = "manifest.json"
REPORT_COLUMNS = [
    "recording_id", "split", "patient", "session", "montage", "status", "reason", "resumed",
    "duration_s", "n_samples", "n_seizures", "seizure_s", "seconds", "edf_path", "annotation_path",
    "offset_s", "n_present", "direct", "derived", "missing",
]
# report.csv is part of the DVC output, so it holds only what the inputs determine: how long a
# recording took and whether this run resumed it differ from run to run (they are in the returned
# report and the log). With them in the file, two identical runs gave two DVC objects.
RUN_ONLY_COLUMNS = ("resumed", "seconds")
# Bytes of an input file read per hash update when fingerprinting it.
_HASH_BLOCK = 1 << 20


class TooManyFailuresError(SzflowError):
    """More than `preprocess.max_failed_fraction` of the recordings could not be preprocessed."""


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
    offset_s: float = 0.0  # onset in the EDF's time (a segment of an EDF+D file after its first)
    n_present: int = 0
    direct: str = ""  # electrodes read from their own referential signal, space-separated
    derived: str = ""  # electrodes reconstructed from bipolar derivations
    missing: str = ""

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
    montage = meta["montage_report"]
    return JobResult(
        recording_id=meta["recording_id"], split=job.split, patient=job.patient, session=job.session,
        montage=job.montage, status="ok", reason="", resumed=resumed,
        duration_s=float(meta["duration_s"]), n_samples=int(meta["n_samples"]),
        n_seizures=len(intervals), seizure_s=float(sum(stop - start for start, stop in intervals)),
        seconds=seconds, edf_path=job.edf_path, annotation_path=job.annotation_path or "",
        offset_s=float(meta["offset_s"]), n_present=int(montage["n_present"]),
        direct=" ".join(montage["direct"]), derived=" ".join(montage["derived"]), missing=" ".join(montage["missing"]),
    )


def segment_intervals(intervals: list[tuple[float, float]], offset_s: float, duration_s: float
                      ) -> list[list[float]]:
    """Seizure intervals (file time) cut to a segment [offset_s, offset_s + duration_s), in segment time."""
    cut = [[max(0.0, a - offset_s), min(duration_s, b - offset_s)] for a, b in intervals]
    return [[float(a), float(b)] for a, b in cut if b > a]


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
    seizure_types, params_hash, present (19 characters 0/1) and offset_s (see `_segment_meta` for
    the full set).
    """
    signal_path, meta_path = recording_paths(out_dir, meta["split"], meta["recording_id"])
    with atomic_path(signal_path) as tmp, open(tmp, "wb") as handle:
        # np.save would append '.npy' to the temporary name; write_array writes to the handle.
        np.lib.format.write_array(handle, quantise(block), allow_pickle=False)
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


def _segment_meta(job: RecordingJob, recording: EegRecording, rid: str, n_samples: int,
                  intervals: list[list[float]], types: list[str]) -> dict:
    rate = float(job.cfg.sample_rate_hz)
    return {
        "format_version": FORMAT_VERSION,
        "recording_id": rid,
        "split": job.split,
        "patient": job.patient,
        "session": job.session,
        "montage": job.montage,
        "edf_path": job.edf_path,
        "annotation_path": job.annotation_path,
        "offset_s": float(recording.offset_s),
        "duration_s": float(recording.duration_s),
        "n_samples": n_samples,
        "sample_rate_hz": rate,
        "source_sample_rates_hz": sorted({float(r) for r in recording.sample_rates}),
        "channels": list(ELECTRODES),
        "present": recording.montage.presence_string(),
        "montage_report": recording.montage.report(),
        "layout": LAYOUT,
        "seizure_intervals": intervals,
        "seizure_samples": [list(span) for span in interval_samples(intervals, n_samples, rate)],
        "seizure_types": list(types),
        "params_hash": job.params_hash,
        "source": _source_fingerprint(job),
    }


def process_recording(job: RecordingJob) -> list[JobResult]:
    """Preprocess one EDF and write its outputs: one report row, or one per continuous segment of an
    EDF+D file. Never raises for bad input: a failure is a `JobResult` with status 'failed' and the
    reason, so one broken file cannot stop a batch."""
    started = time.perf_counter()
    result = JobResult(recording_id=job.recording_id, split=job.split, patient=job.patient,
                       session=job.session, montage=job.montage, edf_path=job.edf_path,
                       annotation_path=job.annotation_path or "")
    try:
        meta = completed_meta(job)
        if meta is not None:
            return [_result_from_meta(job, meta, resumed=True, seconds=time.perf_counter() - started)]
        if not job.annotation_path:
            raise InputFileError(job.edf_path, "no annotation file (.csv_bi / _events.tsv) beside the EDF")
        annotation = read_annotation(job.annotation_path)
        # TUSZ: the per-channel .csv names the seizure types; the .csv_bi only says 'seiz'.
        types = read_annotation(job.types_path).seizure_types() if job.types_path else annotation.seizure_types()
        segments = read_eeg_segments(job.edf_path, expected_duration_s=annotation.duration_s,
                                     min_electrodes=job.cfg.min_electrodes)
        intervals = [(float(start), float(stop)) for start, stop in annotation.seizure_intervals()]
        results = []
        for recording in segments:
            one = len(segments) == 1
            rid = job.recording_id if one else segment_id(job.recording_id, recording.offset_s)
            try:
                block = preprocess_recording(recording, job.cfg)
            except InputFileError as exc:
                if one:
                    raise
                results.append(JobResult(recording_id=rid, split=job.split, patient=job.patient,
                                         session=job.session, montage=job.montage, edf_path=job.edf_path,
                                         annotation_path=job.annotation_path or "", offset_s=recording.offset_s,
                                         reason=f"{exc.path}: segment at {recording.offset_s:g} s: {exc.reason}"))
                continue
            meta = _segment_meta(job, recording, rid, int(block.shape[1]),
                                 segment_intervals(intervals, recording.offset_s, recording.duration_s), types)
            write_recording(job.out_dir, meta, block)
            del block
            results.append(_result_from_meta(job, meta, resumed=False, seconds=time.perf_counter() - started))
        return results
    except InputFileError as exc:
        result.reason = f"{exc.path}: {exc.reason}"
    except MemoryError:
        result.reason = "out of memory"
    except Exception as exc:  # noqa: BLE001 - a batch job reports every other failure and goes on
        result.reason = f"unexpected {type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return [result]


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
