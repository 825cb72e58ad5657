"""Writing a simulated recording as a TUSZ-style EDF (pyedflib) with its `.csv_bi` and `.csv`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyedflib

from szflow.data.annotations import Annotation, write_csv, write_csv_bi
from szflow.io_utils import atomic_path
from szflow.synth.plan import RecordingSpec

DIGITAL_MIN, DIGITAL_MAX = -32768, 32767
RECORD_S = 1  # TUSZ files use 1 s data records; every synthetic rate is a whole number of Hz


def physical_limit(signal: np.ndarray, floor: float = 100.0) -> int:
    """A round symmetric physical limit just above the signal's peak, so nothing clips.

    Sized per signal (as recording systems do per channel type), and an integer so that the
    8-character header field holds it exactly and readers scale with exactly our gain.
    """
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    value = max(1.05 * peak, floor)
    step = 10 ** math.floor(math.log10(value)) / 2
    return int(math.ceil(value / step) * step)


def quantise(signal: np.ndarray, limit: int) -> np.ndarray:
    """Physical -> digital as the EDF specification defines it for range [-limit, limit]."""
    gain = 2.0 * limit / (DIGITAL_MAX - DIGITAL_MIN)
    digital = np.rint((signal.astype(np.float64) + limit) / gain + DIGITAL_MIN)
    return np.clip(digital, DIGITAL_MIN, DIGITAL_MAX).astype(np.int16)


def quantisation_step(limit: int) -> float:
    return 2.0 * limit / (DIGITAL_MAX - DIGITAL_MIN)


def write_edf(path: str | Path, spec: RecordingSpec, signals: list[np.ndarray]) -> list[int]:
    """Write `signals` (physical values, one per spec.signals entry) as an EDF; returns the limits used."""
    n_records = round(spec.duration_s / RECORD_S)
    limits: list[int] = []
    headers = []
    columns: list[np.ndarray] = []
    for sig_spec, signal in zip(spec.signals, signals, strict=True):
        per_record = round(sig_spec.rate * RECORD_S)
        if signal.size != per_record * n_records:
            raise ValueError(f"{sig_spec.label}: {signal.size} samples, expected {per_record * n_records}")
        # The 1 Hz derived channels hold small integers: a unit gain stores them exactly.
        limit = 32767 if sig_spec.kind == "slow" else physical_limit(signal)
        limits.append(limit)
        low = -32768 if sig_spec.kind == "slow" else -limit
        headers.append({
            "label": sig_spec.label, "dimension": sig_spec.dimension, "sample_frequency": sig_spec.rate,
            "physical_max": limit, "physical_min": low, "digital_max": DIGITAL_MAX,
            "digital_min": DIGITAL_MIN, "transducer": "", "prefilter": "",
        })
        digital = (np.rint(signal).astype(np.int16) if sig_spec.kind == "slow"
                   else quantise(signal, limit))
        columns.append(digital.reshape(n_records, per_record))
    # Records interleave the signals: build them all at once, then one write call per record.
    records = np.ascontiguousarray(np.concatenate(columns, axis=1))
    with atomic_path(path) as tmp:
        writer = pyedflib.EdfWriter(str(tmp), len(headers), file_type=pyedflib.FILETYPE_EDF)
        try:
            writer.setSignalHeaders(headers)
            writer.setPatientCode(spec.subject)
            writer.setRecordingAdditional(f"{spec.session}_{spec.year}_{spec.montage}")
            writer.setEquipment("szflow-synth")
            writer.setStartdatetime(spec.start)
            for row in records:
                if writer.blockWriteDigitalShortSamples(row) < 0:
                    raise OSError(f"{path}: pyedflib could not write a data record")
        finally:
            writer.close()
    return limits


def write_annotations(edf_path: str | Path, bi: Annotation, types: Annotation) -> None:
    edf_path = Path(edf_path)
    write_csv_bi(edf_path.with_suffix(".csv_bi"), bi)
    write_csv(edf_path.with_suffix(".csv"), types)
