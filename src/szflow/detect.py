"""`szflow detect`: seizure events for any EDF, computed exactly as the eval stage computes them.

The path from an EDF to events is the training/eval path, step for step:
  1. `szflow.edf_store.prepare_stores`: the electrode resolver (`szflow.data.electrodes`: any
     label convention, referential or bipolar, electrodes missing down to
     `preprocess.min_electrodes`), the input checks, then per continuous segment (one, but for an
     EDF+D file) `read_eeg_segments` and the preprocess stage's chain (`szflow.signal.chain`)
     with params.yaml's `preprocess` section, quantised to the cache's float16;
  2. `szflow.inference.predict_tracks` over that one-recording store, so windows, overlap,
     batching, masking of the padded tail and stitching are the eval stage's own code;
  3. `probs_to_events` with a frozen operating point (`szflow.operating_points`) and
     `events_to_annotation` + `write_csv_bi` / `write_events_tsv`, as eval writes its predictions.
Segments of an EDF+D file are analysed one by one and their events shifted to file time; the
gaps are reported (the montage sidecar `<stem>.montage.json` and the printed line), and the
file-time probability track holds 0 in them. For a recording of the eval split the network input
is the cache's, bit for bit, and the events are eval's (tests/test_detect.py). The probabilities
equal eval's bit for bit when the windows are batched alike; eval batches windows of several
recordings together, and torch's CPU kernels (oneDNN convolutions, BLAS matmuls) round
differently for different batch sizes, so they can differ by float32 round-off (~1e-6): events
differ only if a smoothed probability lies that close to a threshold.

Recordings longer than 2 h (or whose one-piece processing would need more than 1.2 GB) are
preprocessed in chunks (`szflow.signal.streaming`): memory stays bounded whatever the length,
and the network's probabilities differ from the one-piece result by ~1e-4 (tests/test_detect.py).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from szflow.config import Params, load_params
from szflow.data.annotations import write_csv_bi, write_events_tsv
from szflow.data.electrodes import ElectrodeMontage
from szflow.edf_store import MIN_DURATION_S, prepare_stores, recording_id
from szflow.errors import ConfigError, InputFileError
from szflow.inference import predict_tracks, resolve_device
from szflow.io_utils import atomic_write_json
from szflow.model.checkpoint import load_detector
from szflow.operating_points import load_operating_point, uncertified_warning
from szflow.postprocess import events_of_track, events_to_annotation
from szflow.scoring import ProbabilityTrack

log = logging.getLogger("szflow.detect")

FORMATS = {"csv_bi": ".csv_bi", "tsv": "_events.tsv"}
# Beside each events file: which electrodes were read, reconstructed or missing, and the gaps.
MONTAGE_SUFFIX = ".montage.json"
OPERATING_POINTS_NAME = "operating_points.json"


# ----------------------------------------------------------------------------- small helpers
def output_name(rid: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    return rid + FORMATS[fmt]


def find_edfs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(EDF path, output sub-folder) for every input: a file as given, a folder searched recursively.

    Files found under a folder keep their relative sub-folder in the output, so recordings of the
    same name in different sessions never overwrite each other. A path that does not exist is
    returned too (with an empty sub-folder): the caller reports it as that file's failure.
    """
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            edfs = sorted(p for p in item.rglob("*") if p.suffix.lower() == ".edf" and p.is_file())
            found.extend((p, p.parent.relative_to(item)) for p in edfs)
            if not edfs:
                found.append((item, Path()))  # reported as "no .edf files" by detect_paths
        else:
            found.append((item, Path()))
    return found


# ----------------------------------------------------------------------------- one file
@dataclass
class InferenceSettings:
    """Everything about running the network that is not the network: from params and the CLI."""

    window_s: float
    overlap_s: float
    frame_rate_hz: float
    batch_size: int
    device: object  # torch.device
    precision: str = "fp32"

    @classmethod
    def from_params(cls, params: Params, device=None, batch_size: int | None = None) -> InferenceSettings:
        return cls(window_s=params.sampler.window_s, overlap_s=params.sampler.inference_overlap_s,
                   frame_rate_hz=params.model.frame_rate_hz,
                   batch_size=int(batch_size or params.hardware.inference_batch_size),
                   device=resolve_device(device or params.hardware.device), precision=params.hardware.precision)


@dataclass
class FilePrediction:
    """One EDF's probabilities in file time, with its montage and continuous segments."""

    track: ProbabilityTrack  # file time; frames in gaps (and skipped short segments) hold 0
    montage: ElectrodeMontage
    segment_tracks: list[tuple[float, ProbabilityTrack]]  # (offset_s in file time, the segment's track)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    skipped: list[tuple[float, float]] = field(default_factory=list)

    def events(self, operating_point: dict) -> list[tuple[float, float]]:
        """Events at `operating_point`, each segment post-processed on its own, in file time."""
        return [(offset + start, offset + stop) for offset, track in self.segment_tracks
                for start, stop in events_of_track(track, operating_point)]

    def report(self) -> dict:
        """The montage sidecar: electrodes direct / derived / missing, segments and gaps (s)."""
        return {**self.montage.report(),
                "segments": [[offset, offset + track.duration_s] for offset, track in self.segment_tracks],
                "gaps": [list(gap) for gap in self.gaps], "skipped_segments": [list(s) for s in self.skipped],
                "duration_s": self.track.duration_s}


def predict_segments(path: str | Path, model, params: Params, *, settings: InferenceSettings | None = None,
                     progress: bool = False, **store_options) -> FilePrediction:
    """The per-frame seizure probabilities of one EDF, segment by segment (`FilePrediction`).

    `store_options` go to `prepare_stores` (max_exact_s, chunk_s, margin_s). Raises InputFileError
    (an EdfError for a broken file) naming the file for every bad input.
    """
    settings = settings or InferenceSettings.from_params(params)
    prepared = prepare_stores(path, params, window_s=settings.window_s, progress=progress, **store_options)
    segment_tracks: list[tuple[float, ProbabilityTrack]] = []
    try:
        for segment in prepared.segments:
            rid = segment.store.recording_ids[0]
            (track,) = predict_tracks(
                model, segment.store, [rid], window_s=settings.window_s, overlap_s=settings.overlap_s,
                batch_size=settings.batch_size, device=settings.device, precision=settings.precision,
                frame_rate_hz=settings.frame_rate_hz, progress=progress,
            )
            if not np.isfinite(track.probabilities).all():
                raise InputFileError(path, "the network produced non-finite probabilities for this recording")
            segment_tracks.append((segment.offset_s, track))
    finally:
        prepared.close()
    if len(segment_tracks) == 1 and not prepared.gaps and not prepared.skipped:
        file_track = segment_tracks[0][1]
    else:
        rate = settings.frame_rate_hz
        probabilities = np.zeros(math.ceil(prepared.duration_s * rate - 1e-9), dtype=np.float32)
        for offset, track in segment_tracks:
            first = round(offset * rate)
            part = track.probabilities[: max(0, probabilities.size - first)]
            probabilities[first:first + part.size] = part
        file_track = ProbabilityTrack(recording_id(path), probabilities, rate, prepared.duration_s)
    return FilePrediction(file_track, prepared.montage, segment_tracks, prepared.gaps, prepared.skipped)


def predict_file(path: str | Path, model, params: Params, **kwargs) -> ProbabilityTrack:
    """The per-frame seizure probability track (`ProbabilityTrack`) of one EDF, in file time;
    keyword arguments as `predict_segments`."""
    return predict_segments(path, model, params, **kwargs).track


def detect_file(path: str | Path, model, params: Params, operating_point: dict, **kwargs) -> list[tuple[float, float]]:
    """Seizure events (start_s, stop_s) of one EDF in file time; keyword arguments as `predict_segments`."""
    return predict_segments(path, model, params, **kwargs).events(operating_point)


def write_events(path: Path, rid: str, events, duration_s: float, fmt: str) -> None:
    """Write events as TUSZ `.csv_bi` or SzCORE `_events.tsv` (atomically), as eval writes them."""
    annotation = events_to_annotation(rid, events, duration_s)
    (write_csv_bi if fmt == "csv_bi" else write_events_tsv)(path, annotation)


# ----------------------------------------------------------------------------- many files
@dataclass
class FileResult:
    path: str
    status: str = "failed"  # ok | failed
    reason: str = ""
    output: str = ""
    n_events: int = 0
    duration_s: float = 0.0
    seconds: float = 0.0
    montage: str = ""  # one line: electrodes direct / derived / missing, and gaps
    montage_output: str = ""  # the JSON sidecar

    @property
    def message(self) -> str:
        """`<file>: <reason>` (the reason of an InputFileError already names the file)."""
        return self.reason if self.reason.startswith(self.path) else f"{self.path}: {self.reason}"


@dataclass
class DetectSummary:
    files: list[FileResult] = field(default_factory=list)
    out_dir: str = ""
    warnings: list[str] = field(default_factory=list)  # about the whole run (e.g. the model's training data)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status != "ok"]

    @property
    def ok(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "ok"]

    def as_dict(self) -> dict:
        return {"out_dir": self.out_dir, "ok": len(self.ok), "failed": len(self.failed),
                "warnings": list(self.warnings), "files": [vars(f) for f in self.files]}


def detect_paths(inputs: Sequence[str | Path], model, params: Params, operating_point: dict, out_dir: str | Path,
                 fmt: str = "csv_bi", *, settings: InferenceSettings | None = None, progress: bool = False,
                 on_result: Callable[[FileResult], None] | None = None, **kwargs) -> DetectSummary:
    """Detect on every EDF of `inputs` (files, or folders searched recursively for *.edf).

    Never raises for a bad file: each failure is a `FileResult` with its reason, the other files
    go on, and nothing already written is lost (outputs are written atomically, one per EDF).
    `on_result` is called as each file finishes (the CLI prints from it).
    """
    out_dir = Path(out_dir)
    output_name("x", fmt)  # ConfigError for a bad format before any work
    settings = settings or InferenceSettings.from_params(params)
    summary = DetectSummary(out_dir=str(out_dir))
    written: dict[Path, str] = {}
    for edf, sub in find_edfs(inputs):
        started = time.perf_counter()
        result = FileResult(path=str(edf))
        try:
            if edf.is_dir():
                raise InputFileError(edf, "no .edf files in this folder")
            if not edf.exists():
                raise InputFileError(edf, "file not found")
            rid = recording_id(edf)
            target = out_dir / sub / output_name(rid, fmt)
            if target in written:
                raise InputFileError(edf, f"its output {target} would overwrite that of {written[target]}")
            prediction = predict_segments(edf, model, params, settings=settings, progress=progress, **kwargs)
            track = prediction.track
            events = prediction.events(operating_point)
            sidecar = target.with_name(rid + MONTAGE_SUFFIX)
            try:
                write_events(target, rid, events, track.duration_s, fmt)
                atomic_write_json(sidecar, {"edf": str(edf), **prediction.report()})
            except OSError as exc:
                raise InputFileError(edf, f"cannot write {target}: {exc.strerror or exc}") from None
            written[target] = str(edf)
            result.status, result.output, result.n_events = "ok", str(target), len(events)
            result.duration_s = float(track.duration_s)
            result.montage, result.montage_output = montage_line(prediction), str(sidecar)
        except InputFileError as exc:
            result.reason = f"{exc.path}: {exc.reason}"
        except MemoryError:
            result.reason = "out of memory"
        # A batch run reports every other failure (a bug, a CUDA error) and goes on to the next file.
        except Exception as exc:
            log.debug("unexpected failure on %s", edf, exc_info=True)
            result.reason = f"unexpected {type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        summary.files.append(result)
        if on_result is not None:
            on_result(result)
    return summary


def training_data_warning(checkpoint: str | Path, training_data: dict) -> str | None:
    """The warning a checkpoint's training data calls for, or None: a model trained on the synthetic
    corpus has never seen real EEG, and nothing it says about a real recording can be trusted."""
    if training_data.get("source") != "synthetic":
        return None
    return (f"{checkpoint} was trained on the synthetic corpus only ({training_data.get('recordings', '?')} "
            f"recordings, {float(training_data.get('hours', 0.0)):.1f} h of generated EEG): it has never seen "
            "real EEG, and its events on real recordings are not to be trusted. Train on real data "
            "(data.source: tusz or bids) before using it on patients' recordings.")


def run_warnings(checkpoint: str | Path, training_data: dict, points_path: str | Path, operating_point: str,
                 on_warning: Callable[[str], None] | None = None) -> list[str]:
    """The warnings about a run as a whole (`training_data_warning`, `uncertified_warning`), each
    given to `on_warning` (default: the log) once; `szflow detect` and `szflow stream` share them."""
    warnings = [w for w in (training_data_warning(checkpoint, training_data),
                            uncertified_warning(points_path, operating_point)) if w is not None]
    for warning in warnings:
        (on_warning or log.warning)(warning)
    return warnings


def run_detect(inputs: Sequence[str | Path], *, checkpoint: str | Path, operating_point: str = "10",
               operating_points: str | Path | None = None, out_dir: str | Path = "detections",
               fmt: str = "csv_bi", params_dir: str | Path = ".", device: str | None = None,
               batch_size: int | None = None, progress: bool = False,
               on_result: Callable[[FileResult], None] | None = None,
               on_warning: Callable[[str], None] | None = None) -> DetectSummary:
    """What `szflow detect` does: load params, the checkpoint and the operating point, then detect.

    Setup problems (params, checkpoint of another model config, operating points, device, format)
    raise SzflowError before any file is touched; per-file problems are in the summary. Warnings
    about the run as a whole (a model trained on synthetic data, an operating point dev did not
    certify) go to `on_warning` once each, before the first file (default: the log), and into the
    summary.
    """
    if not inputs:
        raise ConfigError("no EDF files or folders given")
    output_name("x", fmt)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    params = load_params(params_dir)
    settings = InferenceSettings.from_params(params, device=device, batch_size=batch_size)
    checkpoint = Path(checkpoint)
    points_path = Path(operating_points) if operating_points else checkpoint.parent / OPERATING_POINTS_NAME
    model, ckpt = load_detector(checkpoint, expected_config=params.model, mamba_impl=params.hardware.mamba_impl,
                                device=settings.device)
    point = load_operating_point(points_path, operating_point, checkpoint_step=ckpt.step)
    log.info("detect: %s step %d, operating point %s FA/24h %s, device %s", checkpoint, ckpt.step,
             operating_point, point, settings.device)
    warnings = run_warnings(checkpoint, ckpt.training_data, points_path, operating_point, on_warning)
    summary = detect_paths(inputs, model, params, point, out_dir, fmt, settings=settings, progress=progress,
                           on_result=on_result)
    summary.warnings = warnings
    return summary


def electrodes_line(montage: ElectrodeMontage) -> str:
    """The electrodes of a recording or a stream (direct / derived / missing), as the per-file line says them."""
    return f"electrodes {montage.summary_line()}"


def montage_line(prediction: FilePrediction) -> str:
    """The electrodes of a file (direct / derived / missing) and its gaps, in one line."""
    line = electrodes_line(prediction.montage)
    if prediction.gaps:
        total = sum(stop - start for start, stop in prediction.gaps)
        line += (f"; {len(prediction.segment_tracks)} segments, "
                 f"{len(prediction.gaps)} gap{'s' if len(prediction.gaps) != 1 else ''} ({total:g} s) without data")
    if prediction.skipped:
        line += f"; {len(prediction.skipped)} segment(s) under {MIN_DURATION_S:g} s not analysed"
    return line


def format_result(result: FileResult) -> str:
    """The stdout line of a file that worked: its events and its montage."""
    hours = result.duration_s / 3600
    return (f"ok: {result.path} -> {result.output} ({result.n_events} event{'s' if result.n_events != 1 else ''}, "
            f"{hours:.2f} h of EEG in {result.seconds:.1f} s; {result.montage})")


def format_summary(summary: DetectSummary) -> str:
    n = len(summary.files)
    head = (f"{n} file{'s' if n != 1 else ''}: {len(summary.ok)} ok, {len(summary.failed)} failed; "
            f"events in {summary.out_dir}{os.sep}")
    lines = [head]
    lines += [f"  failed: {f.message}" for f in summary.failed]
    return "\n".join(lines)


__all__ = [
    "DetectSummary",
    "FilePrediction",
    "FileResult",
    "InferenceSettings",
    "detect_file",
    "detect_paths",
    "electrodes_line",
    "events_of_track",
    "find_edfs",
    "format_result",
    "format_summary",
    "load_operating_point",
    "predict_file",
    "predict_segments",
    "recording_id",
    "run_detect",
    "run_warnings",
    "training_data_warning",
    "write_events",
]
