"""EDF fuzzing: mutated header fields and truncated files.

`read_edf_header` / `read_eeg` must either return or raise `EdfError` (never another exception,
never hang), and `szflow detect` over a folder of such files must report each broken one with a
reason and finish the others. The mutations cover every header field the reader interprets:
number of records, record duration, samples per record, labels, physical and digital min/max,
header length, number of signals, version; plus truncation at any offset and appended junk.
"""

from __future__ import annotations

import contextlib
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from szflow.config import load_params
from szflow.data.edf import ELECTRODES, read_edf_header, read_eeg
from szflow.detect import InferenceSettings, detect_paths
from szflow.errors import EdfError
from szflow.model import Detector
from szflow.synth.writer import EdfSignal, write_edf_signals

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
TIME_LIMIT_S = 10.0
TUSZ_LABELS = [f"EEG {name}-REF" for name in ELECTRODES]
N_SIGNALS = len(TUSZ_LABELS) + 1  # + EKG
# (offset, width) of the fixed-header fields; per-signal fields are located by `field_span`.
FIXED_FIELDS = {"version": (0, 8), "start_date": (168, 8), "start_time": (176, 8), "header_bytes": (184, 8),
                "reserved": (192, 44), "n_records": (236, 8), "record_duration": (244, 8), "n_signals": (252, 4)}
SIGNAL_FIELDS = (("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8), ("physical_max", 8),
                 ("digital_min", 8), ("digital_max", 8), ("prefilter", 80), ("samples_per_record", 8),
                 ("reserved", 32))
INTERPRETED = ("label", "physical_min", "physical_max", "digital_min", "digital_max", "samples_per_record")


def field_span(name: str, signal_index: int, n_signals: int = N_SIGNALS) -> tuple[int, int]:
    position = 256
    for field_name, width in SIGNAL_FIELDS:
        if field_name == name:
            return position + signal_index * width, width
        position += width * n_signals
    raise KeyError(name)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (rather than hang the suite) when the body runs longer than `seconds`."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def base_edf(tmp_path_factory) -> bytes:
    """A valid 12 s EDF: 19 TUSZ electrodes and an EKG at 128 Hz, 1 s records."""
    rng = np.random.default_rng(0)
    path = write_edf_signals(tmp_path_factory.mktemp("edf") / "base.edf",
                             [EdfSignal(label, 128.0, -1000.0, 1000.0) for label in [*TUSZ_LABELS, "EKG"]],
                             [rng.normal(0.0, 40.0, 128 * 12) for _ in range(N_SIGNALS)])
    data = path.read_bytes()
    read_eeg(path)  # the unmutated file is fine
    return data


# ----------------------------------------------------------------------------- mutations
NUMBERS = st.one_of(
    st.integers(-10**7, 10**8).map(str),
    st.sampled_from(["0", "-1", "1", "-0", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "9e99", "1e-320",
                     "0.0001", "1E3", "+5", "0x10", "1,5", "", " ", "12 34", "3.", ".5", "32768", "-32769"]),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: repr(v)[:8]),
)
TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=16),
    st.sampled_from(["EEG FP1-REF", "Fp1", "T7", "FP1-F7", "EEG CZ-LE", "", "EEG", "-", "EEG T3-T5"]),
)
RAW = st.binary(max_size=16)


@st.composite
def mutation(draw) -> tuple[int, bytes]:
    """(offset, bytes) replacing one header field with a number, text or raw bytes."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(FIXED_FIELDS)))
        offset, width = FIXED_FIELDS[name]
    else:
        name = draw(st.sampled_from(INTERPRETED))
        offset, width = field_span(name, draw(st.integers(0, N_SIGNALS - 1)))
    value = draw(st.one_of(NUMBERS.map(str.encode), TEXT.map(str.encode), RAW))
    return offset, value.ljust(width, b" ")[:width]


def apply(data: bytes, mutations, cut: int | None, junk: bytes) -> bytes:
    out = bytearray(data)
    for offset, value in mutations:
        out[offset:offset + len(value)] = value
    out = out[:cut] if cut is not None else out
    return bytes(out) + junk


def read_or_edf_error(path: Path) -> str:
    """'ok' or 'EdfError'; any other exception (or a hang) fails the test."""
    with time_limit(TIME_LIMIT_S):
        try:
            read_edf_header(path)
            recording = read_eeg(path)
        except EdfError as exc:
            assert str(exc).startswith(str(path)), str(exc)  # the message names the file
            return "EdfError"
    assert recording.montage.n_present == 19 and len(recording.signals) == len(recording.montage.sources)
    return "ok"


@FUZZ
@given(mutations=st.lists(mutation(), min_size=1, max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 70_000)),
       junk=st.one_of(st.just(b""), st.binary(min_size=1, max_size=700)))
def test_mutated_header_gives_a_recording_or_edf_error(base_edf: bytes, tmp_path_factory, mutations, cut,
                                                       junk) -> None:
    path = tmp_path_factory.mktemp("fuzz", numbered=True) / "x.edf"
    path.write_bytes(apply(base_edf, mutations, cut, junk))
    read_or_edf_error(path)


def test_truncation_at_every_region(base_edf: bytes, tmp_path: Path) -> None:
    """Cut inside the fixed header, the signal headers, the first record, mid-file and one byte short."""
    header_bytes = 256 * (N_SIGNALS + 1)
    record_bytes = 2 * 128 * N_SIGNALS
    cuts = sorted({0, 1, 100, 255, 256, 257, header_bytes // 2, header_bytes - 1, header_bytes,
                   header_bytes + 1, header_bytes + record_bytes - 1, header_bytes + record_bytes,
                   len(base_edf) // 2, len(base_edf) - 2, len(base_edf) - 1})
    rng = random.Random(0)
    cuts += [rng.randrange(len(base_edf)) for _ in range(40)]
    outcomes = {}
    for cut in cuts:
        path = tmp_path / f"cut{cut}.edf"
        path.write_bytes(base_edf[:cut])
        outcomes[cut] = read_or_edf_error(path)
    assert all(outcome == "EdfError" for outcome in outcomes.values()), outcomes


def test_unknown_record_count_uses_the_whole_records_present(base_edf: bytes, tmp_path: Path) -> None:
    """n_records = -1 (a recording never closed): the complete records are read, a partial one ignored."""
    data = bytearray(base_edf)
    data[236:244] = b"-1      "
    record_bytes = 2 * 128 * N_SIGNALS
    path = tmp_path / "open.edf"
    path.write_bytes(bytes(data[: len(data) - record_bytes // 2]))
    recording = read_eeg(path)
    assert recording.duration_s == 11.0


# ----------------------------------------------------------------------------- detect over broken files
def random_mutant(base: bytes, rng: random.Random) -> bytes:
    """Seeded counterpart of the hypothesis strategy: 1-2 field mutations and/or a truncation."""
    mutations = []
    for _ in range(rng.randint(0, 2)):
        if rng.random() < 0.4:
            offset, width = FIXED_FIELDS[rng.choice(sorted(FIXED_FIELDS))]
        else:
            offset, width = field_span(rng.choice(INTERPRETED), rng.randrange(N_SIGNALS))
        value = rng.choice([str(rng.randint(-5, 300)), rng.choice(["-1", "0", "nan", "1e308", "9e99", "0.5",
                                                                   "abc", "", "EEG CZ-REF", "T7"]),
                            bytes(rng.randrange(256) for _ in range(width)).decode("latin-1")])
        mutations.append((offset, value.encode("latin-1").ljust(width, b" ")[:width]))
    cut = rng.randrange(len(base)) if not mutations or rng.random() < 0.3 else None
    return apply(base, mutations, cut, b"")


def test_detect_reports_broken_files_and_finishes_the_others(base_edf: bytes, tmp_path: Path, write_params) -> None:
    write_params(tmp_path / "proj", {"sampler": {"window_s": 8.0, "inference_overlap_s": 2.0}})
    params = load_params(tmp_path / "proj")
    torch.manual_seed(0)
    model = Detector(params.model, mamba_impl="torch").eval()
    folder = tmp_path / "edfs"
    folder.mkdir()
    rng = random.Random(1234)
    for i in range(60):
        (folder / f"m{i:02d}.edf").write_bytes(random_mutant(base_edf, rng))
    good = [folder / "good_a.edf", folder / "good_b.edf"]
    for path in good:
        path.write_bytes(base_edf)
    results = []
    with time_limit(240):
        summary = detect_paths([folder], model, params, {"smoothing_s": 0.0, "threshold": 0.5,
                                                         "hysteresis_low": None, "min_duration_s": 0.0,
                                                         "merge_gap_s": 0.0},
                               tmp_path / "out", settings=InferenceSettings.from_params(params, "cpu"),
                               on_result=results.append)
    assert len(summary.files) == 62 == len(results)
    by_path = {Path(r.path): r for r in summary.files}
    for path in good:
        assert by_path[path].status == "ok"
        assert (tmp_path / "out" / f"{path.stem}.csv_bi").is_file()
    for result in summary.files:
        if result.status == "ok":
            assert Path(result.output).is_file()
        else:
            assert result.reason.startswith(result.path + ": "), result.reason
            assert "unexpected" not in result.reason, result.reason  # only typed, explained failures
    failed = len(summary.failed)
    assert 30 <= failed <= 60, [r.reason for r in summary.files]
    # Nothing but the outputs of the files that worked was written: events and the montage sidecar.
    written = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(f"{Path(r.path).stem}{suffix}" for r in summary.ok
                             for suffix in (".csv_bi", ".montage.json"))
    np.testing.assert_equal(len(written), 2 * len(summary.ok))
