"""Seizure annotations: TUSZ `.csv_bi` / `.csv` and SzCORE BIDS `_events.tsv`, read and written.

An `Annotation` holds only the non-background events; background rows are implied by the gaps.
Readers drop `bckg` rows and writers regenerate them, so a file we wrote reads back and re-writes
byte for byte, and an annotation built in code survives write -> read (times to 4 decimals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from szflow.errors import AnnotationError
from szflow.io_utils import atomic_write_text

SEIZURE_LABELS: frozenset[str] = frozenset(
    {"seiz", "fnsz", "gnsz", "spsz", "cpsz", "absz", "tnsz", "cnsz", "tcsz", "atsz", "mysz"}
)
BACKGROUND_LABEL = "bckg"
TUSZ_LABELS: frozenset[str] = SEIZURE_LABELS | {BACKGROUND_LABEL}
TERM_CHANNEL = "TERM"
DEFAULT_VERSION = "csv_v1.0.0"
DEFAULT_MONTAGE_FILE = "$NEDC_NFC/lib/nedc_eas_default_montage.txt"
CSV_COLUMNS = ("channel", "start_time", "stop_time", "label", "confidence")
TSV_COLUMNS = ("onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration")
TSV_MISSING = "n/a"

# Durations in TUSZ headers carry 2 decimals and event times 4, so an event may end a rounding
# step past the stated duration without the file being wrong.
DURATION_TOLERANCE_S = 0.01

# TUSZ seizure types -> SzCORE (ILAE 2017) event types, used when writing TUSZ labels to BIDS.
SZCORE_EVENT_TYPES: dict[str, str] = {
    "seiz": "sz",
    "fnsz": "sz_foc",
    "spsz": "sz_foc_a",
    "cpsz": "sz_foc_ia",
    "gnsz": "sz_gen",
    "absz": "sz_gen_nm",
    "tnsz": "sz_gen_m_tonic",
    "cnsz": "sz_gen_m_clonic",
    "tcsz": "sz_gen_m_tonicClonic",
    "atsz": "sz_gen_m_atonic",
    "mysz": "sz_gen_m_myoclonic",
}
_TUSZ_FROM_SZCORE: dict[str, str] = {szcore: tusz for tusz, szcore in SZCORE_EVENT_TYPES.items()}


def _is_seizure_label(label: str) -> bool:
    # SzCORE event types are open-ended below `sz` (sz_foc_ia, sz_gen_m_tonic, ...).
    return label in SEIZURE_LABELS or label.startswith("sz")


@dataclass(frozen=True)
class Event:
    start: float
    stop: float
    label: str = "seiz"
    channel: str = TERM_CHANNEL
    confidence: float = 1.0

    @property
    def is_seizure(self) -> bool:
        return _is_seizure_label(self.label)

    @property
    def duration(self) -> float:
        return self.stop - self.start


def event_sort_key(event: Event) -> tuple[float, float, str, str, float]:
    """The order readers return events in and writers write them in (a function of the events alone)."""
    return (event.start, event.stop, event.channel, event.label, event.confidence)


@dataclass
class Annotation:
    bname: str
    duration_s: float
    events: list[Event]
    version: str = DEFAULT_VERSION
    montage_file: str = DEFAULT_MONTAGE_FILE

    def seizure_intervals(self) -> list[tuple[float, float]]:
        """Sorted union of seizure time over all channels; overlapping or touching intervals merged."""
        spans = sorted((e.start, e.stop) for e in self.events if e.is_seizure)
        merged: list[tuple[float, float]] = []
        for start, stop in spans:
            if merged and start <= merged[-1][1]:
                if stop > merged[-1][1]:
                    merged[-1] = (merged[-1][0], stop)
            else:
                merged.append((start, stop))
        return merged

    def seizure_types(self) -> list[str]:
        return sorted({e.label for e in self.events if e.is_seizure})


# ---------------------------------------------------------------------------------------------
# Reading


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not raw:
        raise AnnotationError(path, "file is empty (zero bytes)")
    try:
        # utf-8-sig drops a BOM that Windows editors leave in front of the first header line.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not UTF-8 text (byte {exc.start})") from None


def _numbered_lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines, stripped, with their 1-based line numbers (CRLF and trailing spaces tolerated)."""
    return [(n, s) for n, line in enumerate(text.split("\n"), start=1) if (s := line.strip())]


def _parse_time(path: Path, line_no: int, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, f"line {line_no}: {name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise AnnotationError(path, f"line {line_no}: {name} {text!r} is not a finite number")
    return value


def _check_event_times(path: Path, line_no: int, start: float, stop: float, duration_s: float) -> None:
    where = f"line {line_no}: " if line_no else ""
    if start < 0:
        raise AnnotationError(path, f"{where}start time {start} is negative")
    if stop < start:
        raise AnnotationError(path, f"{where}stop time {stop} is before start time {start}")
    if stop > duration_s + DURATION_TOLERANCE_S:
        raise AnnotationError(path, f"{where}event ends at {stop} s, after the duration {duration_s} s")


def _parse_duration(path: Path, line_no: int, value: str) -> float:
    # "301.00 secs" in TUSZ; tolerate a bare number or other unit spellings.
    number = value.split()[0] if value.split() else ""
    duration = _parse_time(path, line_no, "duration", number)
    if duration < 0:
        raise AnnotationError(path, f"line {line_no}: duration {duration} is negative")
    return duration


def _read_tusz(path: str | Path) -> Annotation:
    """Shared reader of `.csv_bi` and `.csv`: the two differ only in their channels and labels."""
    path = Path(path)
    lines = _numbered_lines(_read_text(path))
    header: dict[str, tuple[int, str]] = {}
    body: list[tuple[int, str]] = []
    for line_no, line in lines:
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep:
                header.setdefault(key.strip().lower(), (line_no, value.strip()))
        else:
            body.append((line_no, line))

    if "duration" not in header:
        raise AnnotationError(path, "no '# duration = ... secs' header line")
    duration_s = _parse_duration(path, *header["duration"])

    columns = {name: i for i, name in enumerate(CSV_COLUMNS)}
    if body and body[0][1].split(",", 1)[0].strip().lower() == "channel":
        header_line_no, header_line = body.pop(0)
        names = [name.strip().lower() for name in header_line.split(",")]
        columns = {name: i for i, name in enumerate(names)}
        missing = [name for name in CSV_COLUMNS[:4] if name not in columns]
        if missing:
            raise AnnotationError(path, f"line {header_line_no}: column header lacks {', '.join(missing)}")
    width = max(columns.values()) + 1
    i_channel, i_start, i_stop, i_label = (columns[n] for n in CSV_COLUMNS[:4])
    i_confidence = columns.get("confidence")

    events: list[Event] = []
    for line_no, line in body:
        fields = [field.strip() for field in line.split(",")]
        while len(fields) > width and not fields[-1]:
            fields.pop()  # a trailing comma is harmless
        if len(fields) != width:
            raise AnnotationError(path, f"line {line_no}: expected {width} comma-separated fields, "
                                        f"found {len(fields)}")
        label = fields[i_label].lower()
        if label not in TUSZ_LABELS:
            raise AnnotationError(path, f"line {line_no}: unknown label {fields[i_label]!r} "
                                        f"(expected bckg or one of {', '.join(sorted(SEIZURE_LABELS))})")
        start = _parse_time(path, line_no, "start_time", fields[i_start])
        stop = _parse_time(path, line_no, "stop_time", fields[i_stop])
        _check_event_times(path, line_no, start, stop, duration_s)
        confidence = 1.0
        if i_confidence is not None:
            confidence = _parse_time(path, line_no, "confidence", fields[i_confidence])
        channel = fields[i_channel]
        if not channel:
            raise AnnotationError(path, f"line {line_no}: empty channel name")
        if label != BACKGROUND_LABEL:
            events.append(Event(start, stop, label, channel, confidence))

    events.sort(key=event_sort_key)
    bname = header["bname"][1] if header.get("bname", (0, ""))[1] else path.stem
    return Annotation(
        bname=bname,
        duration_s=duration_s,
        events=events,
        version=header["version"][1] if "version" in header else DEFAULT_VERSION,
        montage_file=header["montage_file"][1] if "montage_file" in header else DEFAULT_MONTAGE_FILE,
    )


def read_csv_bi(path: str | Path) -> Annotation:
    """Read a TUSZ binary annotation (`TERM` rows, seiz/bckg); files listing only seizure rows are fine."""
    return _read_tusz(path)


def read_csv(path: str | Path) -> Annotation:
    """Read a TUSZ per-channel annotation with seizure types."""
    return _read_tusz(path)


def _tsv_bname(path: Path) -> str:
    name = path.name
    for suffix in ("_events.tsv", ".tsv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_events_tsv(path: str | Path) -> Annotation:
    """Read a SzCORE BIDS `_events.tsv`; `bckg` rows are dropped, `n/a` confidence reads as 1.0."""
    path = Path(path)
    lines = _numbered_lines(_read_text(path))
    header_line_no, header_line = lines[0] if lines else (0, "")
    names = [name.strip() for name in header_line.split("\t")]
    columns = {name: i for i, name in enumerate(names)}
    missing = [n for n in ("onset", "duration", "eventType", "recordingDuration") if n not in columns]
    if missing:
        raise AnnotationError(path, f"line {header_line_no or 1}: TSV header lacks {', '.join(missing)}")
    i_onset, i_duration, i_type, i_recording = (
        columns[n] for n in ("onset", "duration", "eventType", "recordingDuration")
    )
    i_confidence = columns.get("confidence")
    i_channels = columns.get("channels")

    rows: list[tuple[int, list[str]]] = []
    for line_no, line in lines[1:]:
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) != len(names):
            raise AnnotationError(path, f"line {line_no}: expected {len(names)} tab-separated fields, "
                                        f"found {len(fields)}")
        rows.append((line_no, fields))
    if not rows:
        raise AnnotationError(path, "no event rows, so no recordingDuration")

    duration_s: float | None = None
    for line_no, fields in rows:
        value = _parse_duration(path, line_no, fields[i_recording])
        if duration_s is None:
            duration_s = value
        elif value != duration_s:
            raise AnnotationError(path, f"line {line_no}: recordingDuration {value} differs from "
                                        f"{duration_s} on earlier rows")
    assert duration_s is not None

    events: list[Event] = []
    for line_no, fields in rows:
        event_type = fields[i_type]
        if event_type != BACKGROUND_LABEL and not _is_seizure_label(event_type):
            raise AnnotationError(path, f"line {line_no}: unknown eventType {event_type!r} "
                                        "(expected bckg or sz...)")
        onset = _parse_time(path, line_no, "onset", fields[i_onset])
        length = _parse_time(path, line_no, "duration", fields[i_duration])
        # Rounding to 9 decimals removes the float noise of onset + duration (0.1 + 0.2) while
        # keeping every digit a real file carries.
        stop = round(onset + length, 9)
        _check_event_times(path, line_no, onset, stop, duration_s)
        if event_type == BACKGROUND_LABEL:
            continue
        confidence = 1.0
        if i_confidence is not None and fields[i_confidence] not in (TSV_MISSING, ""):
            confidence = _parse_time(path, line_no, "confidence", fields[i_confidence])
        channel = TERM_CHANNEL
        if i_channels is not None and fields[i_channels] not in (TSV_MISSING, ""):
            channel = fields[i_channels]
        events.append(Event(onset, stop, event_type, channel, confidence))

    events.sort(key=event_sort_key)
    return Annotation(bname=_tsv_bname(path), duration_s=duration_s, events=events)


def read_annotation(path: str | Path) -> Annotation:
    """Read any supported annotation file, chosen by its suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv_bi":
        return read_csv_bi(path)
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".tsv":
        return read_events_tsv(path)
    raise AnnotationError(path, f"unknown annotation format {path.suffix!r} (expected .csv_bi, .csv or .tsv)")


# ---------------------------------------------------------------------------------------------
# Writing


def _t(value: float) -> str:
    return f"{value:.4f}"


def _format_duration(duration_s: float) -> str:
    # TUSZ writes 2 decimals; keep 4 when 2 would lose a digit that event times still carry.
    short = f"{duration_s:.2f}"
    return short if float(short) == round(duration_s, 4) else f"{duration_s:.4f}"


def _validated_events(path: Path, ann: Annotation, forbidden_in_channel: str = ",\t\r\n") -> list[Event]:
    """The non-background events in write order, after the checks a reader would apply."""
    if not math.isfinite(ann.duration_s) or ann.duration_s < 0:
        raise AnnotationError(path, f"cannot write duration {ann.duration_s}")
    events = sorted((e for e in ann.events if e.label != BACKGROUND_LABEL), key=event_sort_key)
    for event in events:
        if not (math.isfinite(event.start) and math.isfinite(event.stop) and math.isfinite(event.confidence)):
            raise AnnotationError(path, f"cannot write non-finite event {event}")
        _check_event_times(path, 0, event.start, event.stop, ann.duration_s)
        if not event.is_seizure:
            raise AnnotationError(path, f"cannot write label {event.label!r}: neither a seizure nor bckg")
        if not event.channel or any(c in event.channel for c in forbidden_in_channel):
            raise AnnotationError(path, f"cannot write channel name {event.channel!r}")
    return events


def _header_text(ann: Annotation) -> str:
    return (
        f"# version = {ann.version}\n"
        f"# bname = {ann.bname}\n"
        f"# duration = {_format_duration(ann.duration_s)} secs\n"
        f"# montage_file = {ann.montage_file}\n"
        "#\n"
        f"{','.join(CSV_COLUMNS)}\n"
    )


def _timeline_rows(channel: str, events: list[Event], duration_s: float) -> list[str]:
    """Rows of one channel: its events in time order with `bckg` rows in the gaps, as TUSZ writes them."""
    rows: list[str] = []
    cursor = 0.0
    for event in events:
        start, stop = round(event.start, 4), round(event.stop, 4)
        if start > cursor:
            rows.append(f"{channel},{_t(cursor)},{_t(start)},{BACKGROUND_LABEL},{_t(1.0)}")
        rows.append(f"{channel},{_t(start)},{_t(stop)},{event.label},{_t(event.confidence)}")
        cursor = max(cursor, stop)
    end = round(duration_s, 4)
    if end > cursor or not rows:
        rows.append(f"{channel},{_t(cursor)},{_t(end)},{BACKGROUND_LABEL},{_t(1.0)}")
    return rows


def _tusz_label(label: str) -> str:
    if label in SEIZURE_LABELS:
        return label
    # Several SzCORE types have no TUSZ counterpart (sz_uc, sz_foc_a_m, ...): they are still seizures.
    return _TUSZ_FROM_SZCORE.get(label, "seiz")


def write_csv_bi(path: str | Path, ann: Annotation) -> None:
    """Write a TUSZ binary annotation: the whole timeline on `TERM`, seizures as `seiz`.

    Overlapping seizures (e.g. from several channels) are merged, keeping the highest confidence;
    seizures that only touch stay separate, since scorers count them as separate events.
    """
    path = Path(path)
    events = _validated_events(path, ann)
    merged: list[Event] = []
    for event in events:
        if not event.is_seizure:
            continue
        if merged and event.start < merged[-1].stop:
            last = merged[-1]
            merged[-1] = Event(last.start, max(last.stop, event.stop), "seiz", TERM_CHANNEL,
                               max(last.confidence, event.confidence))
        else:
            merged.append(Event(event.start, event.stop, "seiz", TERM_CHANNEL, event.confidence))
    rows = _timeline_rows(TERM_CHANNEL, merged, ann.duration_s)
    atomic_write_text(path, _header_text(ann) + "\n".join(rows) + "\n")


def write_csv(path: str | Path, ann: Annotation) -> None:
    """Write a TUSZ per-channel annotation: each channel's timeline, seizure types as labels.

    SzCORE event types are mapped back to TUSZ types where one matches, else to `seiz`.
    """
    path = Path(path)
    events = _validated_events(path, ann)
    by_channel: dict[str, list[Event]] = {}
    for event in events:
        by_channel.setdefault(event.channel, []).append(
            Event(event.start, event.stop, _tusz_label(event.label), event.channel, event.confidence))
    rows: list[str] = []
    for channel, channel_events in by_channel.items():
        rows.extend(_timeline_rows(channel, channel_events, ann.duration_s))
    if not rows:
        rows = _timeline_rows(TERM_CHANNEL, [], ann.duration_s)
    atomic_write_text(path, _header_text(ann) + "\n".join(rows) + "\n")


def write_events_tsv(path: str | Path, ann: Annotation, date_time: str = "2000-01-01 00:00:00") -> None:
    """Write a SzCORE BIDS `_events.tsv`: one row per seizure, or one `bckg` row when there are none.

    TUSZ labels become SzCORE event types (seiz -> sz, fnsz -> sz_foc, ...); `sz...` labels are kept.
    """
    path = Path(path)
    # SzCORE lists several channels in one field, separated by commas.
    events = _validated_events(path, ann, forbidden_in_channel="\t\r\n")
    recording = _t(ann.duration_s)
    rows = ["\t".join(TSV_COLUMNS)]
    for event in events:
        if event.label.startswith("sz"):
            event_type = event.label
        elif event.label in SZCORE_EVENT_TYPES:
            event_type = SZCORE_EVENT_TYPES[event.label]
        else:
            raise AnnotationError(path, f"cannot write label {event.label!r} as a SzCORE event type")
        confidence = TSV_MISSING if event.confidence == 1.0 else _t(event.confidence)
        channels = TSV_MISSING if event.channel == TERM_CHANNEL else event.channel
        rows.append("\t".join((_t(event.start), _t(round(event.stop, 4) - round(event.start, 4)), event_type, confidence,
                               channels, date_time, recording)))
    if not events:
        rows.append("\t".join((_t(0.0), recording, BACKGROUND_LABEL, TSV_MISSING, TSV_MISSING,
                               date_time, recording)))
    atomic_write_text(path, "\n".join(rows) + "\n")
