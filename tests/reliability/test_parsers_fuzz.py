"""Property tests of the annotation readers: any input gives an Annotation or an AnnotationError,
never another exception; generated annotations survive write -> read -> write unchanged."""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from szflow.data.annotations import (
    DURATION_TOLERANCE_S,
    SEIZURE_LABELS,
    Annotation,
    Event,
    event_sort_key,
    read_csv,
    read_csv_bi,
    read_events_tsv,
    write_csv,
    write_csv_bi,
    write_events_tsv,
)
from szflow.errors import AnnotationError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Reader = Callable[[Path], Annotation]
Writer = Callable[[Path, Annotation], None]
FORMATS: dict[str, tuple[Reader, Writer]] = {
    "csv_bi": (read_csv_bi, write_csv_bi),
    "csv": (read_csv, write_csv),
    "events.tsv": (read_events_tsv, write_events_tsv),
}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Module-scoped: hypothesis re-runs the test body many times within one function-scoped fixture.
    # On tmpfs when there is one: the writers fsync, which costs milliseconds per file on a disk.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
        yield Path(folder)


def _file(workdir: Path, kind: str, content: bytes) -> Path:
    path = workdir / f"rec_s001_t000.{kind}".replace(".events.tsv", "_events.tsv")
    path.write_bytes(content)
    return path


def _assert_well_formed(ann: Annotation) -> None:
    assert math.isfinite(ann.duration_s) and ann.duration_s >= 0
    for event in ann.events:
        assert math.isfinite(event.start) and math.isfinite(event.stop) and math.isfinite(event.confidence)
        assert 0 <= event.start <= event.stop <= ann.duration_s + DURATION_TOLERANCE_S
        assert event.is_seizure and event.channel
    assert ann.events == sorted(ann.events, key=event_sort_key)
    intervals = ann.seizure_intervals()
    assert all(a[1] < b[0] for a, b in itertools.pairwise(intervals))


def _read_or_typed_error(reader: Reader, path: Path) -> None:
    try:
        ann = reader(path)
    except AnnotationError as exc:
        assert exc.path == str(path)
        return
    _assert_well_formed(ann)


# --- generated annotations ----------------------------------------------------------------------

GRID = 10_000  # files carry 4 decimals: values on this grid survive formatting exactly
SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-./$", min_size=1, max_size=20)
CHANNELS = st.sampled_from(["FP1-F7", "F7-T3", "T3-T5", "C3-P3", "FZ-CZ", "A1-T3"])


@st.composite
def annotations(draw: st.DrawFn, kind: str) -> Annotation:
    duration_ticks = draw(st.integers(0, 4000 * GRID))
    duration = duration_ticks / GRID
    points = sorted(draw(st.lists(st.integers(0, duration_ticks), max_size=12)))
    confidence = st.integers(0, GRID).map(lambda k: k / GRID)
    events: list[Event] = []
    if kind == "csv_bi":
        # Binary files hold one timeline: seizures may touch but not overlap.
        for start, stop in zip(points[::2], points[1::2], strict=False):
            events.append(Event(start / GRID, stop / GRID, "seiz", "TERM", draw(confidence)))
    else:
        for i in range(0, len(points) - 1, 2):
            start, stop = sorted(draw(st.lists(st.sampled_from(points), min_size=2, max_size=2)))
            if kind == "csv":
                label, channel = draw(st.sampled_from(sorted(SEIZURE_LABELS))), draw(CHANNELS)
            else:
                label = draw(st.sampled_from(["sz", "sz_foc", "sz_foc_ia", "sz_gen_m_tonicClonic"]))
                channel = draw(st.one_of(st.just("TERM"), CHANNELS, st.just("Fp1,F7,T3")))
            events.append(Event(start / GRID, stop / GRID, label, channel, draw(confidence)))
    events.sort(key=event_sort_key)
    if kind == "events.tsv":
        # A BIDS file has no header: its bname is its file name.
        return Annotation("round_trip", duration, events)
    return Annotation(draw(SAFE_TEXT), duration, events, version=draw(SAFE_TEXT), montage_file=draw(SAFE_TEXT))


@pytest.mark.parametrize("kind", list(FORMATS))
@FUZZ
@given(data=st.data())
def test_round_trip_of_generated_annotations(workdir: Path, kind: str, data: st.DataObject) -> None:
    reader, writer = FORMATS[kind]
    ann = data.draw(annotations(kind))
    path = workdir / ("round_trip_events.tsv" if kind == "events.tsv" else f"round_trip.{kind}")
    writer(path, ann)
    first = path.read_bytes()
    back = reader(path)
    assert back == ann
    writer(path, back)
    assert path.read_bytes() == first


# --- random and mutated input -------------------------------------------------------------------

CSV_ALPHABET = "0123456789.,-+e# =\n\r\t abcdfilnorstuvTERMSZ\ufeff"
FRAGMENTS = [b",", b"\t", b"\n", b"\r\n", b"#", b"=", b" ", b"nan", b"inf", b"-1", b"1e309", b"1e-9",
             b"\xff", b"\x00", b"\xef\xbb\xbf", b"secs", b"bckg", b"seiz", b"fnsz", b"sz", b"n/a", b"TERM",
             b"# duration = 10.00 secs\n", b"channel,start_time,stop_time,label,confidence\n",
             b"onset\tduration\teventType\trecordingDuration\n", b"999999999999999999999"]


@pytest.mark.parametrize("kind", list(FORMATS))
@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(CSV_ALPHABET, max_size=300).map(str.encode)))
def test_random_input_gives_annotation_or_typed_error(workdir: Path, kind: str, content: bytes) -> None:
    reader, _ = FORMATS[kind]
    _read_or_typed_error(reader, _file(workdir, kind, content))


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    content = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate_line", "truncate"]))
        at = draw(st.integers(0, len(content)))
        if op == "delete":
            del content[at:at + draw(st.integers(1, 8))]
        elif op == "insert":
            content[at:at] = draw(st.sampled_from(FRAGMENTS))
        elif op == "replace" and at < len(content):
            content[at] = draw(st.integers(0, 255))
        elif op == "duplicate_line":
            lines = bytes(content).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            content = bytearray(b"\n".join(lines))
        elif op == "truncate":
            del content[at:]
    return bytes(content)


@pytest.mark.parametrize("kind", list(FORMATS))
@FUZZ
@given(data=st.data())
def test_mutated_valid_files_give_annotation_or_typed_error(workdir: Path, kind: str, data: st.DataObject) -> None:
    reader, writer = FORMATS[kind]
    path = _file(workdir, kind, b"")
    writer(path, data.draw(annotations(kind)))
    path.write_bytes(data.draw(mutated(path.read_bytes())))
    _read_or_typed_error(reader, path)
