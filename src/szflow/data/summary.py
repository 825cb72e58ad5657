"""Per-split corpus summary: patients, recordings, hours, seizures, montages, sample rates, failures,
and the electrodes of every recording (`szflow.data.electrodes`): read directly, reconstructed from
bipolar derivations, missing.

Counts come from the annotations; EDF files are checked from their headers and file sizes only,
so summarising the full TUSZ takes seconds and works on trees whose EDF files are absent.
The header scan here is deliberately separate from `szflow.data.edf.read_edf_header`: that one
rejects a truncated file outright, while a summary must say how much of it is there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from szflow.config import SPLITS
from szflow.data.annotations import Annotation, read_annotation
from szflow.data.discover import discover_corpus
from szflow.data.edf import (
    DURATION_TOLERANCE_S,
    FIXED_HEADER_BYTES,
    SIGNAL_HEADER_BYTES,
    read_edf_header,
    read_segments,
)
from szflow.data.electrodes import resolve_montage
from szflow.errors import AnnotationError, EdfError


@dataclass(frozen=True)
class EdfHeaderScan:
    n_records: int
    record_duration_s: float
    labels: list[str]
    samples_per_record: list[int]
    header_bytes: int
    bytes_per_record: int
    file_bytes: int
    reserved: str = ""

    @property
    def discontinuous(self) -> bool:
        return self.reserved.upper().startswith("EDF+D")

    @property
    def duration_s(self) -> float:
        return self.n_records * self.record_duration_s

    @property
    def records_held(self) -> int:
        if self.bytes_per_record <= 0:
            return 0
        return max(0, (self.file_bytes - self.header_bytes) // self.bytes_per_record)

    def eeg_sample_rate(self) -> float:
        """The rate of the EEG signals (TUSZ mixes in 1 Hz IBI/BURSTS channels and other rates)."""
        rates = [spr / self.record_duration_s for spr in self.samples_per_record]
        eeg = [r for label, r in zip(self.labels, rates, strict=True) if label.upper().startswith("EEG")]
        return Counter(eeg or rates).most_common(1)[0][0]


def _header_field(path: Path, block: bytes, start: int, width: int, name: str) -> str:
    try:
        return block[start:start + width].decode("ascii").strip()
    except UnicodeDecodeError:
        raise EdfError(path, f"EDF header field {name} is not ASCII") from None


def _header_number(path: Path, text: str, name: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        raise EdfError(path, f"bad EDF header: {name} {text!r} is not a number") from None


def scan_edf_header(path: str | Path) -> EdfHeaderScan:
    """Parse the EDF/BDF fixed header and signal headers, without touching the data records."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            fixed = handle.read(FIXED_HEADER_BYTES)
            if len(fixed) < FIXED_HEADER_BYTES:
                raise EdfError(path, f"EDF truncated inside its header ({len(fixed)} bytes)")
            bdf = fixed[:1] == b"\xff"
            if not bdf and fixed[:8].strip() != b"0":
                raise EdfError(path, "bad EDF header: version field is not '0'")
            header_bytes = int(_header_number(path, _header_field(path, fixed, 184, 8, "header bytes"),
                                              "header bytes", int))
            n_records = int(_header_number(path, _header_field(path, fixed, 236, 8, "records"),
                                           "number of records", int))
            record_duration = float(_header_number(path, _header_field(path, fixed, 244, 8, "duration"),
                                                   "record duration", float))
            n_signals = int(_header_number(path, _header_field(path, fixed, 252, 4, "signals"),
                                           "number of signals", int))
            if n_signals <= 0 or header_bytes != FIXED_HEADER_BYTES + n_signals * SIGNAL_HEADER_BYTES:
                raise EdfError(path, f"bad EDF header: {header_bytes} header bytes for {n_signals} signals")
            if record_duration <= 0:
                raise EdfError(path, f"bad EDF header: record duration {record_duration}")
            reserved = fixed[192:236].decode("latin-1").strip()
            signal_block = handle.read(header_bytes - FIXED_HEADER_BYTES)
            file_bytes = handle.seek(0, 2)
    except OSError as exc:
        raise EdfError(path, f"cannot read EDF: {exc.strerror or exc}") from None
    if len(signal_block) < header_bytes - FIXED_HEADER_BYTES:
        raise EdfError(path, "EDF truncated inside its signal headers")
    labels = [_header_field(path, signal_block, 16 * i, 16, "label") for i in range(n_signals)]
    # Offset of "samples per record" among the per-signal fields: label 16, transducer 80,
    # physical dimension 8, physical min/max 8+8, digital min/max 8+8, prefiltering 80.
    spr_offset = n_signals * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
    samples_per_record = [
        int(_header_number(path, _header_field(path, signal_block, spr_offset + 8 * i, 8, "samples"),
                           "samples per record", int))
        for i in range(n_signals)
    ]
    if any(n <= 0 for n in samples_per_record):
        raise EdfError(path, "bad EDF header: a signal has no samples per record")
    bytes_per_sample = 3 if bdf else 2
    bytes_per_record = sum(samples_per_record) * bytes_per_sample
    header = EdfHeaderScan(n_records, record_duration, labels, samples_per_record, header_bytes,
                           bytes_per_record, file_bytes, reserved)
    if n_records < 0:
        # -1 means "unknown" (recording still running when the header was written): trust the size.
        header = EdfHeaderScan(header.records_held, record_duration, labels, samples_per_record,
                               header_bytes, bytes_per_record, file_bytes, reserved)
    return header


def _format_rate(rate: float) -> str:
    return f"{rate:g}"


def _empty_split() -> dict:
    return {"patients": 0, "recordings": 0, "hours": 0.0, "seizures": 0, "seizure_hours": 0.0,
            "montages": {}, "sample_rates": {}, "electrodes": {}, "electrode_reports": [], "failed": []}


def electrode_kind(report: dict) -> str:
    """How a recording's electrodes were found: 'direct' (all 19 read), 'derived' (some reconstructed,
    none missing), 'missing' (some missing)."""
    return "missing" if report["missing"] else "derived" if report["derived"] else "direct"


@dataclass
class _RecordingCheck:
    annotation: Annotation | None = None
    sample_rate: str | None = None
    electrodes: dict | None = None  # the montage report, plus the EDF+D segment count
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _check_recording(edf_path: str, annotation_path: str | None) -> _RecordingCheck:
    check = _RecordingCheck()
    if annotation_path is None:
        check.problems.append((edf_path, "annotation missing"))
    else:
        try:
            check.annotation = read_annotation(annotation_path)
        except AnnotationError as exc:
            check.problems.append((annotation_path, f"annotation unreadable: {exc.reason}"))

    if not Path(edf_path).is_file():
        check.problems.append((edf_path, "EDF missing"))
        return check
    try:
        header = scan_edf_header(edf_path)
    except EdfError as exc:
        check.problems.append((edf_path, exc.reason))
        return check
    check.sample_rate = _format_rate(header.eeg_sample_rate())
    check.electrodes = {**resolve_montage(header.labels).report(), "segments": 1}
    end_s = header.duration_s
    if header.discontinuous and header.records_held >= header.n_records:
        # File time runs to the end of the last record, gaps included: that is what annotations count.
        try:
            segments, onsets = read_segments(edf_path, read_edf_header(edf_path))
        except EdfError as exc:
            check.problems.append((edf_path, exc.reason))
            return check
        check.electrodes["segments"] = len(segments)
        end_s = float(onsets[-1] + header.record_duration_s) if len(onsets) else 0.0
    if header.records_held < header.n_records:
        held_s = header.records_held * header.record_duration_s
        reason = f"EDF truncated: header says {header.duration_s:g} s, file holds {held_s:g} s"
        check.problems.append((edf_path, reason))
    elif (check.annotation is not None
          and abs(end_s - check.annotation.duration_s) > DURATION_TOLERANCE_S):
        relation = "shorter" if end_s < check.annotation.duration_s else "longer"
        reason = (f"EDF {relation} than annotation: {end_s:.1f} s vs "
                  f"{check.annotation.duration_s:.1f} s")
        check.problems.append((edf_path, reason))
    return check


def summarise_corpus(root: str | Path) -> dict:
    """Summary per split (see the module docstring); broken files are listed, never fatal."""
    table = discover_corpus(root)
    splits: dict[str, dict] = {}
    order = {name: i for i, name in enumerate(SPLITS)}
    for split in sorted(table["split"].unique(), key=lambda s: (order.get(s, len(order)), s)):
        rows = table[table["split"] == split]
        entry = _empty_split()
        rates: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        seconds = seizure_seconds = 0.0
        for row in rows.itertuples(index=False):
            check = _check_recording(row.edf_path, row.annotation_path)
            if check.annotation is not None:
                seconds += check.annotation.duration_s
                intervals = check.annotation.seizure_intervals()
                entry["seizures"] += len(intervals)
                seizure_seconds += sum(stop - start for start, stop in intervals)
            if check.sample_rate is not None:
                rates[check.sample_rate] += 1
            if check.electrodes is not None:
                kinds[electrode_kind(check.electrodes)] += 1
                entry["electrode_reports"].append({"recording_id": row.recording_id, **check.electrodes})
            entry["failed"].extend({"recording_id": row.recording_id, "path": path, "reason": reason}
                                   for path, reason in check.problems)
        entry.update(
            patients=int(rows["patient"].nunique()),
            recordings=len(rows),
            hours=seconds / 3600.0,
            seizure_hours=seizure_seconds / 3600.0,
            montages=dict(sorted(Counter(rows["montage"]).items())),
            sample_rates=dict(sorted(rates.items(), key=lambda item: float(item[0]))),
            electrodes={kind: kinds[kind] for kind in ("direct", "derived", "missing") if kinds[kind]},
        )
        splits[split] = entry
    return {"root": str(root), "format": str(table["format"].iloc[0]), "splits": splits}


_MAX_FAILED_SHOWN = 20


def format_summary(summary: dict) -> str:
    """A plain-text table of `summarise_corpus`'s result, then the failed files."""
    headers = ["split", "patients", "recordings", "hours", "seizures", "seizure h", "failed",
               "montages", "sample rates (Hz)", "electrodes"]
    table = [headers]
    for name, split in summary["splits"].items():
        table.append([
            name,
            str(split["patients"]),
            str(split["recordings"]),
            f"{split['hours']:.2f}",
            str(split["seizures"]),
            f"{split['seizure_hours']:.2f}",
            str(len(split["failed"])),
            " ".join(f"{k}:{v}" for k, v in split["montages"].items()) or "-",
            " ".join(f"{k}:{v}" for k, v in split["sample_rates"].items()) or "-",
            " ".join(f"{k}:{v}" for k, v in split["electrodes"].items()) or "-",
        ])
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    numeric = {1, 2, 3, 4, 5, 6}
    lines = [f"{summary['root']} ({summary['format']})"]
    for line in table:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    unusual = [(name, item) for name, split in summary["splits"].items() for item in split["electrode_reports"]
               if item["derived"] or item["missing"] or item["segments"] > 1]
    if unusual:
        lines.append("")
        lines.append(f"recordings with reconstructed or missing electrodes, or gaps ({len(unusual)}):")
        for name, item in unusual[:_MAX_FAILED_SHOWN]:
            parts = [f"{len(item['direct'])} direct"]
            if item["derived"]:
                parts.append(f"derived {' '.join(item['derived'])}")
            if item["missing"]:
                parts.append(f"missing {' '.join(item['missing'])}")
            if item["segments"] > 1:
                parts.append(f"{item['segments']} segments (EDF+D)")
            lines.append(f"  {name}  {item['recording_id']}  {'; '.join(parts)}")
        if len(unusual) > _MAX_FAILED_SHOWN:
            lines.append(f"  ... and {len(unusual) - _MAX_FAILED_SHOWN} more (see --json)")
    failed = [(name, item) for name, split in summary["splits"].items() for item in split["failed"]]
    if failed:
        lines.append("")
        lines.append(f"failed files ({len(failed)}):")
        for name, item in failed[:_MAX_FAILED_SHOWN]:
            lines.append(f"  {name}  {item['recording_id']}  {item['reason']}  ({item['path']})")
        if len(failed) > _MAX_FAILED_SHOWN:
            lines.append(f"  ... and {len(failed) - _MAX_FAILED_SHOWN} more (see --json)")
    return "\n".join(lines)
