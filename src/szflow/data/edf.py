"""EDF reading: a validated header, then the 19 10-20 electrodes as float32 microvolts.

The header is parsed here (not by pyedflib) so that each way a file can be broken gets its own
reason in the `EdfError`. The data records are read as one int16 block and each needed signal
is sliced out of it: one sequential read instead of one call per channel, which is what makes
this reader several times faster than pyedflib's `readSignal` (DESIGN.md §4).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from szflow.config import ELECTRODES

# electrode_name is re-exported: readers of labels (the synthetic corpus, tests) know it from here.
from szflow.data.electrodes import ElectrodeMontage, electrode_name, resolve_montage  # noqa: F401
from szflow.errors import EdfError

FIXED_HEADER_BYTES = 256
SIGNAL_HEADER_BYTES = 256
# Agreement needed between an annotation's duration and the EDF's (TUSZ rounds to whole records).
DURATION_TOLERANCE_S = 1.0

# (name, width) of the per-signal header fields, stored field by field for all signals in turn.
_SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8), ("physical_max", 8),
    ("digital_min", 8), ("digital_max", 8), ("prefilter", 80), ("samples_per_record", 8),
    ("reserved", 32),
)


@dataclass
class EdfHeader:
    path: str
    labels: list[str]
    sample_rates: list[float]
    n_records: int
    record_duration_s: float
    duration_s: float
    samples_per_record: list[int]
    physical_min: list[float]
    physical_max: list[float]
    digital_min: list[int]
    digital_max: list[int]
    dimensions: list[str]
    header_bytes: int
    start_date: str
    start_time: str
    reserved: str

    @property
    def n_signals(self) -> int:
        return len(self.labels)

    @property
    def record_samples(self) -> int:
        """int16 samples in one data record (all signals)."""
        return sum(self.samples_per_record)

    def scale(self, index: int) -> tuple[float, float]:
        """(gain, offset) with physical = digital * gain + offset, as the EDF specification defines."""
        gain = (self.physical_max[index] - self.physical_min[index]) / (
            self.digital_max[index] - self.digital_min[index])
        return gain, self.physical_min[index] - self.digital_min[index] * gain


@dataclass
class EegRecording:
    path: str
    signals: list[np.ndarray]  # float32 physical units, one per `montage.sources` entry in that order
    sample_rates: list[float]
    duration_s: float
    labels: list[str]  # the labels of the signals read, in `montage.sources` order
    montage: ElectrodeMontage  # how the signals give the 19 electrodes (szflow.data.electrodes)
    # Where the signals start in the file's time (s): 0 but for a segment of an EDF+D file after its first.
    offset_s: float = 0.0


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _ascii(path: Path, raw: bytes, what: str) -> str:
    # The EDF specification asks for ASCII, but real exports put e.g. "µV" (Latin-1) in text fields;
    # Latin-1 decodes any byte, and numeric fields are still checked by float()/int() below.
    return raw.decode("latin-1").strip()


def _number(path: Path, raw: bytes, what: str) -> float:
    text = _ascii(path, raw, what)
    try:
        value = float(text)
    except ValueError:
        raise EdfError(path, f"bad header: {what} is not a number: {text!r}") from None
    if not np.isfinite(value):
        raise EdfError(path, f"bad header: {what} is not a finite number: {text!r}")
    return value


def _integer(path: Path, raw: bytes, what: str) -> int:
    value = _number(path, raw, what)
    if value != int(value):
        raise EdfError(path, f"bad header: {what} is not an integer: {_ascii(path, raw, what)!r}")
    return int(value)


def _check_signals(path: Path, labels: list[str], samples: list[int], physical_min: list[float],
                   physical_max: list[float], digital_min: list[int], digital_max: list[int]) -> None:
    """EdfError for a signal whose header fields cannot describe samples."""
    for i, label in enumerate(labels):
        if samples[i] < 1:
            raise EdfError(path, f"bad header: signal {label!r} has {samples[i]} samples per record")
        if digital_max[i] <= digital_min[i]:
            raise EdfError(path, f"bad header: signal {label!r} digital max {digital_max[i]} is not above "
                                 f"digital min {digital_min[i]}")
        if max(abs(physical_min[i]), abs(physical_max[i])) > _FLOAT32_MAX:
            raise EdfError(path, f"bad header: signal {label!r} physical range "
                                 f"[{physical_min[i]:g}, {physical_max[i]:g}] overflows float32")
        if physical_max[i] == physical_min[i]:
            raise EdfError(path, f"bad header: signal {label!r} has equal physical min and max "
                                 f"({physical_min[i]})")


def _parse_header(path: Path, handle, file_size: int) -> EdfHeader:
    fixed = handle.read(FIXED_HEADER_BYTES)
    if len(fixed) < FIXED_HEADER_BYTES:
        raise EdfError(path, f"truncated: {file_size} bytes, shorter than the {FIXED_HEADER_BYTES}-byte "
                             "EDF header")
    version = _ascii(path, fixed[0:8], "version field")
    if version != "0":
        raise EdfError(path, f"bad header: version field is {version!r}, expected '0' (not an EDF file?)")
    n_signals = _integer(path, fixed[252:256], "field 'number of signals'")
    if n_signals < 1:
        raise EdfError(path, f"bad header: number of signals is {n_signals}")
    header_bytes = _integer(path, fixed[184:192], "field 'number of bytes in header'")
    expected_header = FIXED_HEADER_BYTES + n_signals * SIGNAL_HEADER_BYTES
    if header_bytes != expected_header:
        raise EdfError(path, f"bad header: header size field says {header_bytes} bytes, expected "
                             f"{expected_header} for {n_signals} signals")
    if file_size < header_bytes:
        raise EdfError(path, f"truncated: {file_size} bytes, shorter than its {header_bytes}-byte header")
    n_records = _integer(path, fixed[236:244], "field 'number of data records'")
    record_duration = _number(path, fixed[244:252], "field 'duration of a data record'")
    if record_duration <= 0:
        raise EdfError(path, f"bad header: data record duration is {record_duration} s")

    raw = handle.read(n_signals * SIGNAL_HEADER_BYTES)
    fields: dict[str, list[bytes]] = {}
    pos = 0
    for name, width in _SIGNAL_FIELDS:
        fields[name] = [raw[pos + i * width: pos + (i + 1) * width] for i in range(n_signals)]
        pos += width * n_signals

    def column(name: str, parse) -> list:
        return [parse(path, value, f"signal {i + 1} field '{name}'") for i, value in enumerate(fields[name])]

    labels = column("label", _ascii)
    samples = column("samples_per_record", _integer)
    physical_min = column("physical_min", _number)
    physical_max = column("physical_max", _number)
    digital_min = column("digital_min", _integer)
    digital_max = column("digital_max", _integer)
    _check_signals(path, labels, samples, physical_min, physical_max, digital_min, digital_max)

    record_bytes = 2 * sum(samples)
    available = (file_size - header_bytes) // record_bytes
    if n_records == -1:
        # -1 means "unknown" (a recording that was not closed): the file size decides.
        n_records = available
    elif n_records < 0:
        raise EdfError(path, f"bad header: number of data records is {n_records}")
    elif available < n_records:
        raise EdfError(path, f"truncated: the header promises {n_records} data records "
                             f"({header_bytes + n_records * record_bytes} bytes) but the file holds "
                             f"{file_size} bytes ({available} complete records)")
    return EdfHeader(
        path=str(path),
        labels=labels,
        sample_rates=[s / record_duration for s in samples],
        n_records=n_records,
        record_duration_s=record_duration,
        duration_s=n_records * record_duration,
        samples_per_record=samples,
        physical_min=physical_min,
        physical_max=physical_max,
        digital_min=digital_min,
        digital_max=digital_max,
        dimensions=column("dimension", _ascii),
        header_bytes=header_bytes,
        start_date=_ascii(path, fixed[168:176], "field 'start date'"),
        start_time=_ascii(path, fixed[176:184], "field 'start time'"),
        reserved=_ascii(path, fixed[192:236], "reserved field"),
    )


def _open(path: Path):
    """Open for reading, turning OS errors into EdfError; callers close it with `with`."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to a `with` in the caller
    except FileNotFoundError:
        raise EdfError(path, "file not found") from None
    except IsADirectoryError:
        raise EdfError(path, "is a directory, not an EDF file") from None
    except OSError as exc:
        raise EdfError(path, f"cannot open: {exc.strerror or exc}") from None
    return handle


def read_edf_header(path: str | Path) -> EdfHeader:
    """Parse and validate an EDF header (and check the file holds the records it promises)."""
    path = Path(path)
    with _open(path) as handle:
        return _parse_header(path, handle, os.fstat(handle.fileno()).st_size)


def resolve_header(header: EdfHeader, min_electrodes: int = len(ELECTRODES)) -> ElectrodeMontage:
    """The montage of an EDF's signals (`szflow.data.electrodes.resolve_montage`); EdfError naming the
    missing electrodes when fewer than `min_electrodes` of the 19 can be read or reconstructed."""
    montage = resolve_montage(header.labels)
    refusal = montage.refusal(min_electrodes)
    if refusal is not None:
        raise EdfError(header.path, refusal)
    return montage


ANNOTATION_LABEL = "EDF Annotations"
# Two data records are back to back when the second starts within this of the first's end (EDF+
# onsets are written to 100 ns at best; this also absorbs float formatting of the onsets).
CONTIGUITY_TOLERANCE_S = 1e-4


def is_discontinuous(header: EdfHeader) -> bool:
    """EDF+D: data records need not be back to back in time; their onsets are in the annotation signal."""
    return header.reserved.upper().startswith("EDF+D")


def record_onsets(header: EdfHeader, records: np.ndarray) -> np.ndarray:
    """Onset (s from the file start) of every data record of an EDF+ file, from the time-keeping
    TAL that opens each record's annotation signal (EDF+ specification, section 2.2.4)."""
    if ANNOTATION_LABEL not in header.labels:
        raise EdfError(header.path, f"EDF+D file without an '{ANNOTATION_LABEL}' signal: its records' onsets are unknown")
    index = header.labels.index(ANNOTATION_LABEL)
    first = sum(header.samples_per_record[:index])
    raw = np.ascontiguousarray(records[:, first:first + header.samples_per_record[index]]).astype("<i2", copy=False)
    onsets = np.empty(records.shape[0])
    for k in range(records.shape[0]):
        text = raw[k].tobytes().split(b"\x14", 1)[0].split(b"\x15", 1)[0]
        try:
            onsets[k] = float(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise EdfError(header.path, f"EDF+D data record {k} has no readable time-keeping onset "
                                        f"({text[:20]!r})") from None
    return onsets


def contiguous_segments(header: EdfHeader, onsets: np.ndarray) -> list[tuple[int, int]]:
    """[first, stop) data-record ranges of the continuous segments of an EDF+D file."""
    steps = np.diff(onsets) - header.record_duration_s
    if np.any(steps < -CONTIGUITY_TOLERANCE_S):
        k = int(np.flatnonzero(steps < -CONTIGUITY_TOLERANCE_S)[0])
        raise EdfError(header.path, f"EDF+D data record {k + 1} starts at {onsets[k + 1]:g} s, before the end "
                                    f"of record {k} ({onsets[k] + header.record_duration_s:g} s)")
    breaks = (np.flatnonzero(steps > CONTIGUITY_TOLERANCE_S) + 1).tolist()
    bounds = [0, *breaks, len(onsets)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def segment_id(recording_id: str, offset_s: float) -> str:
    """The recording id of the segment of an EDF+D file that starts `offset_s` into the file."""
    return f"{recording_id}_at{offset_s:g}s"


def read_segments(path: str | Path, header: EdfHeader) -> tuple[list[tuple[int, int]], np.ndarray]:
    """([first, stop) data-record ranges of the continuous segments, onset of every record in s) of
    an EDF: one segment for EDF and EDF+C; for EDF+D only the annotation signal is read."""
    onsets = np.arange(header.n_records) * header.record_duration_s
    if not is_discontinuous(header) or header.n_records == 0:
        return [(0, header.n_records)], onsets
    try:
        records = np.memmap(path, dtype="<i2", mode="r", offset=header.header_bytes,
                            shape=(header.n_records, header.record_samples))
    except (OSError, ValueError) as exc:
        raise EdfError(path, f"cannot read its data records: {exc}") from None
    onsets = record_onsets(header, records)
    del records
    return contiguous_segments(header, onsets), onsets


def read_eeg_segments(path: str | Path, expected_duration_s: float | None = None,
                      min_electrodes: int = len(ELECTRODES)) -> list[EegRecording]:
    """The EEG of an EDF as one `EegRecording` per continuous segment (one for EDF and EDF+C).

    Each recording holds the signals `resolve_header` chooses, as float32 physical values at
    their own rates; an EDF+D file's segments carry their onset in file time (`offset_s`).
    `expected_duration_s` (from the recording's annotation, in file time) must agree with the
    end of the last data record within 1 s: labels of a file that disagrees with its annotation
    cannot be trusted.
    """
    path = Path(path)
    with _open(path) as handle:
        header = _parse_header(path, handle, os.fstat(handle.fileno()).st_size)
        montage = resolve_header(header, min_electrodes)
        record_samples = header.record_samples
        # One read of every record: far fewer syscalls than per-signal reads, and the EEG
        # electrodes are most of each record anyway.
        block = np.fromfile(handle, dtype="<i2", count=header.n_records * record_samples,
                            offset=header.header_bytes - handle.tell())
    if block.size != header.n_records * record_samples:
        raise EdfError(path, f"truncated: read {block.size} of {header.n_records * record_samples} samples")
    records = block.reshape(header.n_records, record_samples)
    if is_discontinuous(header) and header.n_records:
        onsets = record_onsets(header, records)
        segments = contiguous_segments(header, onsets)
    else:
        segments, onsets = [(0, header.n_records)], np.arange(header.n_records) * header.record_duration_s
    end_s = float(onsets[-1] + header.record_duration_s) if header.n_records else 0.0
    if expected_duration_s is not None and abs(expected_duration_s - end_s) > DURATION_TOLERANCE_S:
        raise EdfError(path, f"annotation duration {expected_duration_s:g} s disagrees with the EDF "
                             f"duration {end_s:g} s")
    chosen = list(montage.sources)
    return [EegRecording(
        path=str(path),
        signals=decode_signals(header, records[first:stop], chosen),
        sample_rates=[header.sample_rates[i] for i in chosen],
        duration_s=(stop - first) * header.record_duration_s,
        labels=[header.labels[i] for i in chosen],
        montage=montage,
        offset_s=float(onsets[first]) if header.n_records else 0.0,
    ) for first, stop in segments]


def read_eeg(path: str | Path, expected_duration_s: float | None = None,
             min_electrodes: int = len(ELECTRODES)) -> EegRecording:
    """The EEG of a continuous EDF (`read_eeg_segments`); EdfError for an EDF+D file with gaps."""
    segments = read_eeg_segments(path, expected_duration_s, min_electrodes)
    if len(segments) > 1:
        raise EdfError(path, f"discontinuous EDF+ file with {len(segments)} segments: read it with read_eeg_segments")
    return segments[0]


def decode_signals(header: EdfHeader, records: np.ndarray, chosen: list[int]) -> list[np.ndarray]:
    """Signals `chosen` of an (n_records, record_samples) int16 block as float32 physical values.

    The one decoding of EDF samples: int16 times a float32 gain, plus a float32 offset, straight
    into float32 (no int32/float64 temporaries), so a sample has the same value however much of
    the file was read around it.
    """
    starts = np.concatenate(([0], np.cumsum(header.samples_per_record)))
    signals: list[np.ndarray] = []
    for index in chosen:
        spr = header.samples_per_record[index]
        gain, offset = header.scale(index)
        out = np.empty((records.shape[0], spr), dtype=np.float32)
        np.multiply(records[:, starts[index]:starts[index] + spr], np.float32(gain), out=out)
        if offset != 0.0:
            out += np.float32(offset)
        signals.append(out.reshape(-1))
    return signals


def read_records(handle, header: EdfHeader, chosen: list[int], first_record: int, n_records: int
                 ) -> list[np.ndarray]:
    """Signals `chosen` over data records [first_record, first_record + n_records) of an open EDF."""
    record_samples = header.record_samples
    handle.seek(header.header_bytes + 2 * first_record * record_samples)
    block = np.fromfile(handle, dtype="<i2", count=n_records * record_samples)
    if block.size != n_records * record_samples:
        raise EdfError(header.path, f"truncated: data records {first_record}..{first_record + n_records} "
                                    "are not all in the file")
    return decode_signals(header, block.reshape(n_records, record_samples), chosen)
