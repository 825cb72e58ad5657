"""Writing EDF files (pyedflib): any signals given as values, and a simulated recording as a
TUSZ-style EDF with its `.csv_bi` and `.csv`. The one EDF writer of the project: tests and
benchmarks write their EDF files with it too.

EDF+D (discontinuous) files are built here byte by byte (`write_edf_plus_d`): pyedflib's writer
(edflib) writes only continuous files. Their layout, from the EDF+ specification: reserved field
`EDF+D`, the EDF+ patient and recording fields, an `EDF Annotations` signal (last) whose first
TAL in every data record is the record's onset in seconds from the file start (`+95\x14\x14\x00`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyedflib

from szflow.data.annotations import Annotation, write_csv, write_csv_bi
from szflow.io_utils import atomic_path
from szflow.synth.channels import SignalSpec
from szflow.synth.plan import RecordingSpec

DIGITAL_MIN, DIGITAL_MAX = -32768, 32767
RECORD_S = 1  # TUSZ files use 1 s data records; every synthetic rate is a whole number of Hz
# A fixed start unless one is given, so that the same signals always give the same bytes.
DEFAULT_START = dt.datetime(2000, 1, 1)


@dataclass(frozen=True)
class EdfSignal:
    """The header of one EDF signal; its samples span the full 16-bit digital range."""

    label: str
    rate: float  # samples per second: a whole number per 1 s data record
    physical_min: float
    physical_max: float
    dimension: str = "uV"

    def header(self) -> dict:
        return {
            "label": self.label, "dimension": self.dimension, "sample_frequency": self.rate,
            "physical_max": self.physical_max, "physical_min": self.physical_min, "digital_max": DIGITAL_MAX,
            "digital_min": DIGITAL_MIN, "transducer": "", "prefilter": "",
        }


def physical_limit(signal: np.ndarray, floor: float = 100.0) -> int:
    """A round symmetric physical limit just above the signal's peak, so nothing clips.

    Sized per signal (as recording systems do per channel type), and an integer so that the
    8-character header field holds it exactly and readers scale with exactly our gain.
    """
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    value = max(1.05 * peak, floor)
    step = 10 ** math.floor(math.log10(value)) / 2
    return int(math.ceil(value / step) * step)


def to_digital(values: np.ndarray, signal: EdfSignal) -> np.ndarray:
    """Physical -> digital as the EDF specification defines it for the signal's physical range,
    rounded and clipped to 16 bits."""
    gain = (signal.physical_max - signal.physical_min) / (DIGITAL_MAX - DIGITAL_MIN)
    digital = np.rint((np.asarray(values, np.float64) - signal.physical_min) / gain + DIGITAL_MIN)
    return np.clip(digital, DIGITAL_MIN, DIGITAL_MAX).astype(np.int16)


def write_edf_records(path: str | Path, signals: Sequence[EdfSignal], blocks: Iterable[Sequence[np.ndarray]], *,
                      start: dt.datetime = DEFAULT_START, patient_code: str = "", recording_additional: str = "",
                      equipment: str = "") -> None:
    """Write an EDF (atomically) from `blocks` of digital samples, one block at a time.

    Each block holds one int16 array per signal, all covering the same whole number of 1 s data
    records, so a long file can be written without holding it in memory.
    """
    per_record = [round(signal.rate * RECORD_S) for signal in signals]
    with atomic_path(path) as tmp:
        writer = pyedflib.EdfWriter(str(tmp), len(signals), file_type=pyedflib.FILETYPE_EDF)
        try:
            writer.setSignalHeaders([signal.header() for signal in signals])
            writer.setPatientCode(patient_code)
            writer.setRecordingAdditional(recording_additional)
            writer.setEquipment(equipment)
            writer.setStartdatetime(start)
            for block in blocks:
                n_records = block[0].size // per_record[0]
                columns = []
                for signal, n, digital in zip(signals, per_record, block, strict=True):
                    if digital.size != n * n_records:
                        raise ValueError(f"{signal.label}: {digital.size} samples in a block of {n_records} "
                                         f"records of {n}")
                    columns.append(digital.reshape(n_records, n))
                # Records interleave the signals: build a block's at once, then one write call per record.
                for row in np.ascontiguousarray(np.concatenate(columns, axis=1)):
                    if writer.blockWriteDigitalShortSamples(row) < 0:
                        raise OSError(f"{path}: pyedflib could not write a data record")
        finally:
            writer.close()


def write_edf_signals(path: str | Path, signals: Sequence[EdfSignal], values: Sequence[np.ndarray], *,
                      start: dt.datetime = DEFAULT_START) -> Path:
    """Write physical `values` (one array per signal, clipped to its physical range) as an EDF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digital = [to_digital(v, signal) for signal, v in zip(signals, values, strict=True)]
    write_edf_records(path, signals, [digital], start=start)
    return path


def write_edf(path: str | Path, spec: RecordingSpec, signals: list[np.ndarray],
              signal_specs: Sequence[SignalSpec] | None = None) -> list[int]:
    """Write `signals` (physical values, one per `signal_specs` entry, spec.signals by default) as
    an EDF; as EDF+D without the gap's records when spec.variant has a gap. Returns the limits used."""
    n_records = round(spec.duration_s / RECORD_S)
    limits: list[int] = []
    edf_signals: list[EdfSignal] = []
    digital: list[np.ndarray] = []
    for sig_spec, signal in zip(spec.signals if signal_specs is None else signal_specs, signals, strict=True):
        per_record = round(sig_spec.rate * RECORD_S)
        if signal.size != per_record * n_records:
            raise ValueError(f"{sig_spec.label}: {signal.size} samples, expected {per_record * n_records}")
        # The 1 Hz derived channels hold small integers: a unit gain stores them exactly.
        limit = 32767 if sig_spec.kind == "slow" else physical_limit(signal)
        limits.append(limit)
        low = -32768 if sig_spec.kind == "slow" else -limit
        edf_signal = EdfSignal(sig_spec.label, sig_spec.rate, low, limit, sig_spec.dimension)
        edf_signals.append(edf_signal)
        digital.append(np.rint(signal).astype(np.int16) if sig_spec.kind == "slow" else to_digital(signal, edf_signal))
    header = {"start": spec.start, "patient_code": spec.subject,
              "recording_additional": f"{spec.session}_{spec.year}_{spec.montage}", "equipment": "szflow-synth"}
    if spec.variant.gap_s > 0:
        gap_start, gap_stop = round(spec.variant.gap_start_s / RECORD_S), round(
            (spec.variant.gap_start_s + spec.variant.gap_s) / RECORD_S)
        per_record = [round(s.rate * RECORD_S) for s in edf_signals]
        segments = [(0.0, [d[:gap_start * n] for d, n in zip(digital, per_record)]),
                    (gap_stop * RECORD_S, [d[gap_stop * n:] for d, n in zip(digital, per_record)])]
        write_edf_plus_d(path, edf_signals, segments, **header)
    else:
        write_edf_records(path, edf_signals, [digital], **header)
    return limits


ANNOTATION_LABEL = "EDF Annotations"
# 2-byte samples of the annotation signal per data record: room for the longest onset TAL.
ANNOTATION_SAMPLES = 16
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _field(value: object, width: int) -> bytes:
    text = str(value)
    if len(text) > width or not text.isascii():
        raise ValueError(f"EDF header field {text!r} does not fit {width} ASCII characters")
    return text.ljust(width).encode("ascii")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.8g}"[:8]


def onset_tal(onset_s: float) -> bytes:
    """The time-keeping TAL that opens a data record's annotation signal: its onset, no annotation."""
    text = f"{onset_s:.6f}".rstrip("0").rstrip(".")
    return f"+{text}\x14\x14\x00".encode("ascii")


def write_edf_plus_d(path: str | Path, signals: Sequence[EdfSignal],
                     segments: Sequence[tuple[float, Sequence[np.ndarray]]], *, start: dt.datetime = DEFAULT_START,
                     patient_code: str = "", recording_additional: str = "", equipment: str = "") -> Path:
    """Write an EDF+D (atomically): `segments` of (onset in seconds from the file start, one int16
    digital array per signal covering whole 1 s data records); the time between segments is a gap."""
    path = Path(path)
    per_record = [round(signal.rate * RECORD_S) for signal in signals]
    counts = [segment[0].size // per_record[0] for _, segment in segments]
    all_signals = [*signals, EdfSignal(ANNOTATION_LABEL, ANNOTATION_SAMPLES / RECORD_S, -1.0, 1.0, "")]
    recording = f"Startdate {start.day:02d}-{_MONTHS[start.month - 1]}-{start.year} X X {equipment or 'X'}"
    fixed = b"".join([
        _field("0", 8), _field(f"{patient_code.replace(' ', '_') or 'X'} X X X", 80),
        _field(f"{recording} {recording_additional}".strip(), 80), _field(start.strftime("%d.%m.%y"), 8),
        _field(start.strftime("%H.%M.%S"), 8), _field(256 * (len(all_signals) + 1), 8), _field("EDF+D", 44),
        _field(sum(counts), 8), _field(RECORD_S, 8), _field(len(all_signals), 4),
    ])
    columns = (
        ([s.label for s in all_signals], 16), (["" for _ in all_signals], 80), ([s.dimension for s in all_signals], 8),
        ([_number(s.physical_min) for s in all_signals], 8), ([_number(s.physical_max) for s in all_signals], 8),
        ([DIGITAL_MIN for _ in all_signals], 8), ([DIGITAL_MAX for _ in all_signals], 8),
        (["" for _ in all_signals], 80), ([*per_record, ANNOTATION_SAMPLES], 8), (["" for _ in all_signals], 32),
    )
    header = fixed + b"".join(_field(value, width) for values, width in columns for value in values)
    blocks = []
    for (onset, segment), n_records in zip(segments, counts, strict=True):
        parts = []
        for signal, n, digital in zip(signals, per_record, segment, strict=True):
            if digital.size != n * n_records:
                raise ValueError(f"{signal.label}: {digital.size} samples in a segment of {n_records} records of {n}")
            parts.append(np.asarray(digital, dtype="<i2").reshape(n_records, n))
        tals = np.zeros((n_records, 2 * ANNOTATION_SAMPLES), dtype=np.uint8)
        for k in range(n_records):
            tal = onset_tal(onset + k * RECORD_S)
            tals[k, :len(tal)] = np.frombuffer(tal, dtype=np.uint8)
        parts.append(tals.view("<i2"))
        blocks.append(np.concatenate(parts, axis=1).tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(header + b"".join(blocks))
    return path


def write_annotations(edf_path: str | Path, bi: Annotation, types: Annotation) -> None:
    edf_path = Path(edf_path)
    write_csv_bi(edf_path.with_suffix(".csv_bi"), bi)
    write_csv(edf_path.with_suffix(".csv"), types)
