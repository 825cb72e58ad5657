"""EDF reader: channel selection by label, per-signal rates, values equal to pyedflib, typed errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from szflow.data.edf import ELECTRODES, EdfError, electrode_name, read_edf_header, read_eeg
from szflow.errors import InputFileError
from szflow.synth.writer import EdfSignal, write_edf_signals

TUSZ_EXTRAS = ("EEG EKG1-REF", "PHOTIC-REF", "IBI", "BURSTS", "SUPPR")


def write_edf(path: Path, labels: list[str], rates: list[float], seconds: int = 4, seed: int = 0,
              physical: tuple[float, float] = (-500.0, 800.0)) -> list[np.ndarray]:
    """A small EDF; returns the physical signals written."""
    rng = np.random.default_rng(seed)
    signals = [np.clip(rng.normal(0.0, 60.0, int(rate * seconds)), physical[0], physical[1]) for rate in rates]
    write_edf_signals(path, [EdfSignal(label, rate, *physical) for label, rate in zip(labels, rates, strict=True)],
                      signals, start=dt.datetime(2010, 3, 4, 5, 6, 7))
    return signals


def tusz_labels(suffix: str, ears: bool = True) -> list[str]:
    names = list(ELECTRODES[:16]) + (["A1", "A2"] if ears else []) + list(ELECTRODES[16:])
    return [f"EEG {name}-{suffix}" for name in names]


def assert_matches_pyedflib(path: Path, recording) -> None:
    with pyedflib.EdfReader(str(path)) as reader:
        labels = reader.getSignalLabels()
        for label, signal in zip(recording.labels, recording.signals):
            expected = reader.readSignal(labels.index(label))
            assert signal.dtype == np.float32
            np.testing.assert_allclose(signal, expected, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize(("label", "name"), [
    ("EEG FP1-REF", "FP1"), ("EEG FP1-LE", "FP1"), ("Fp1", "FP1"), ("EEG T7-REF", "T3"), ("T8", "T4"),
    ("P7", "T5"), ("EEG P8-LE", "T6"), ("Cz", "CZ"), ("EEG FZ-REF", "FZ"), (" EEG O2-REF ", "O2"),
    ("EEG EKG1-REF", None), ("IBI", None), ("PHOTIC-REF", None), ("EEG A1-REF", None),
    ("EEG T1-REF", None), ("EEG C3P-REF", None), ("FP1-F7", None), ("EEG 26-REF", None),
])
def test_electrode_name(label: str, name: str | None) -> None:
    assert electrode_name(label) == name


@pytest.mark.parametrize(("suffix", "ears"), [("REF", True), ("LE", True), ("REF", False)],
                         ids=["01_tcp_ar", "02_tcp_le", "03_tcp_ar_a"])
def test_tusz_montage_labels(tmp_path: Path, suffix: str, ears: bool) -> None:
    labels = tusz_labels(suffix, ears) + list(TUSZ_EXTRAS)
    rates = [250.0] * (len(labels) - 3) + [1.0, 1.0, 1.0]
    path = tmp_path / "rec.edf"
    written = write_edf(path, labels, rates)
    recording = read_eeg(path)
    assert recording.labels == [f"EEG {name}-{suffix}" for name in ELECTRODES]
    assert recording.sample_rates == [250.0] * 19
    assert recording.duration_s == 4.0
    assert [s.size for s in recording.signals] == [1000] * 19
    assert_matches_pyedflib(path, recording)
    # Values are the written ones up to the 16-bit quantisation step.
    step = (800.0 + 500.0) / 65535
    np.testing.assert_allclose(recording.signals[ELECTRODES.index("CZ")], written[labels.index(f"EEG CZ-{suffix}")],
                               atol=step)


def test_plain_and_alias_labels_in_any_order(tmp_path: Path) -> None:
    # 10-10 names as BIDS datasets write them, reversed, after a non-EEG signal.
    labels = ["ECG"] + ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8",
                        "T7", "T8", "P7", "P8", "Fz", "Cz", "Pz"][::-1]
    path = tmp_path / "plain.edf"
    write_edf(path, labels, [256.0] * len(labels))
    recording = read_eeg(path)
    assert recording.labels[ELECTRODES.index("FP1")] == "Fp1"
    assert recording.labels[ELECTRODES.index("T3")] == "T7"
    assert recording.labels[ELECTRODES.index("T6")] == "P8"
    assert_matches_pyedflib(path, recording)


def test_mixed_rates_per_signal(tmp_path: Path) -> None:
    labels = tusz_labels("REF") + list(TUSZ_EXTRAS)
    rates = [250.0] * len(labels)
    rates[labels.index("EEG O2-REF")] = 500.0
    rates[labels.index("EEG CZ-REF")] = 125.0
    rates[-3:] = [1.0, 1.0, 1.0]
    path = tmp_path / "mixed.edf"
    write_edf(path, labels, rates, seconds=3)
    recording = read_eeg(path, expected_duration_s=3.4)
    by_name = dict(zip(ELECTRODES, zip(recording.sample_rates, recording.signals)))
    assert by_name["O2"][0] == 500.0 and by_name["O2"][1].size == 1500
    assert by_name["CZ"][0] == 125.0 and by_name["CZ"][1].size == 375
    assert by_name["FP1"][0] == 250.0 and by_name["FP1"][1].size == 750
    assert_matches_pyedflib(path, recording)
    header = read_edf_header(path)
    assert header.n_signals == len(labels)
    assert header.sample_rates[-1] == 1.0
    assert header.n_records == 3 and header.record_duration_s == 1.0
    assert header.start_date == "04.03.10" and header.start_time == "05.06.07"


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.edf"
    write_edf(path, tusz_labels("REF") + list(TUSZ_EXTRAS), [250.0] * 23 + [1.0] * 3, seconds=5)
    return path


def expect_error(path: Path, fragment: str, **kwargs) -> EdfError:
    with pytest.raises(EdfError) as info:
        read_eeg(path, **kwargs)
    error = info.value
    assert isinstance(error, InputFileError)
    assert error.path == str(path)
    assert fragment in error.reason, error.reason
    assert str(path) in str(error)
    return error


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.edf", "file not found")
    with pytest.raises(EdfError):
        read_edf_header(tmp_path / "nope.edf")


def test_truncated_data(good_file: Path) -> None:
    raw = good_file.read_bytes()
    good_file.write_bytes(raw[:-777])
    expect_error(good_file, "truncated")
    with pytest.raises(EdfError, match="truncated"):
        read_edf_header(good_file)


def test_truncated_header(good_file: Path) -> None:
    good_file.write_bytes(good_file.read_bytes()[:1000])
    expect_error(good_file, "truncated")


def test_garbage_in_numeric_field(good_file: Path) -> None:
    raw = bytearray(good_file.read_bytes())
    raw[236:244] = b"x?#1    "
    good_file.write_bytes(bytes(raw))
    expect_error(good_file, "bad header: field 'number of data records' is not a number")


def test_wrong_header_size(good_file: Path) -> None:
    raw = bytearray(good_file.read_bytes())
    raw[184:192] = b"9999    "
    good_file.write_bytes(bytes(raw))
    expect_error(good_file, "bad header: header size field says 9999 bytes")


def test_not_an_edf(tmp_path: Path) -> None:
    path = tmp_path / "text.edf"
    path.write_bytes(b"hello world, this is not an EDF file" * 20)
    expect_error(path, "bad header")


def test_garbage_in_signal_field(good_file: Path) -> None:
    raw = bytearray(good_file.read_bytes())
    n_signals = 26
    # Physical minimum of signal 3: after label(16) transducer(80) dimension(8) fields of all signals.
    at = 256 + n_signals * (16 + 80 + 8) + 2 * 8
    raw[at:at + 8] = b"-5oo    "
    good_file.write_bytes(bytes(raw))
    expect_error(good_file, "signal 3 field 'physical_min' is not a number")


def test_missing_electrode_is_named(tmp_path: Path) -> None:
    labels = [label for label in tusz_labels("LE") if "CZ" not in label and "O1" not in label]
    path = tmp_path / "short.edf"
    write_edf(path, labels + ["EEG EKG1-LE"], [250.0] * (len(labels) + 1))
    error = expect_error(path, "missing electrodes O1, CZ")
    assert "EEG FP1-LE" in error.reason  # the labels found are listed to help the user


def test_annotation_duration_disagrees(good_file: Path) -> None:
    expect_error(good_file, "disagrees", expected_duration_s=7.5)
    assert read_eeg(good_file, expected_duration_s=5.9).duration_s == 5.0


def test_unknown_record_count(good_file: Path) -> None:
    # -1 records ("still recording") is legal: the file size decides.
    raw = bytearray(good_file.read_bytes())
    raw[236:244] = b"-1      "
    good_file.write_bytes(bytes(raw))
    assert read_eeg(good_file).duration_s == 5.0


def test_latin1_units_and_float32_overflow_in_header(tmp_path: Path) -> None:
    """Real exports put 'µV' (Latin-1) in text fields; a physical range beyond float32 is refused."""
    path = tmp_path / "units.edf"
    write_edf(path, tusz_labels("REF"), [250.0] * 21)
    data = bytearray(path.read_bytes())
    n_signals = int(data[252:256].decode())
    dimension_at = 256 + n_signals * (16 + 80)
    data[dimension_at:dimension_at + 8] = "µV".encode("latin-1").ljust(8)
    path.write_bytes(bytes(data))
    assert read_edf_header(path).dimensions[0] == "µV"
    read_eeg(path)

    physical_max_at = 256 + n_signals * (16 + 80 + 8 + 8)
    data[physical_max_at:physical_max_at + 8] = b"9e99    "
    path.write_bytes(bytes(data))
    with pytest.raises(EdfError, match="overflows float32"):
        read_eeg(path)
