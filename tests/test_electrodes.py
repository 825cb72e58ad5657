"""The electrode resolver: label conventions, least-squares reconstruction from derivations, missing
electrodes and the minimum, the presence mask's path to preprocessing, and EDF+D segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from szflow.config import ELECTRODES, load_params
from szflow.data.edf import EdfError, read_edf_header, read_eeg, read_eeg_segments, resolve_header
from szflow.data.electrodes import (
    REFERENCE_NODE,
    electrode_name,
    parse_label,
    parse_presence,
    presence_string,
    resolve_montage,
    without,
)
from szflow.signal.chain import preprocess_recording
from szflow.signal.montage import common_average_reference
from szflow.synth.writer import EdfSignal, write_edf_signals

ROOT = Path(__file__).resolve().parents[1]
CFG = load_params(ROOT).preprocess

# The CHB-MIT bipolar montage, as its EDF files list it (T8-P8 twice, P7-T7 the reverse of T7-P7).
CHB_MIT = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4",
           "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9",
           "FT9-FT10", "FT10-T8", "T8-P8"]
# The TUSZ temporal central parasagittal (TCP) montage: no FZ or PZ in it.
TCP = ["FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2", "A1-T3", "T3-C3", "C3-CZ",
       "CZ-C4", "C4-T4", "T4-A2", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2"]
TEN_TEN = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}


@pytest.mark.parametrize(("label", "parsed"), [
    ("EEG FP1-REF", ("FP1", REFERENCE_NODE)), ("EEG FP1-LE", ("FP1", REFERENCE_NODE)),
    ("FP1-AR", ("FP1", REFERENCE_NODE)), ("Fp1-Ref", ("FP1", REFERENCE_NODE)), ("Fp1-AVG", ("FP1", REFERENCE_NODE)),
    ("Fp1", ("FP1", REFERENCE_NODE)), ("Fp1.", ("FP1", REFERENCE_NODE)), ("C3..", ("C3", REFERENCE_NODE)),
    ("T7..", ("T3", REFERENCE_NODE)), ("EEG T8-REF", ("T4", REFERENCE_NODE)), ("P7", ("T5", REFERENCE_NODE)),
    ("p8-le", ("T6", REFERENCE_NODE)), (" EEG O2-REF ", ("O2", REFERENCE_NODE)), ("Cz-Avg", ("CZ", REFERENCE_NODE)),
    ("FP1-F7", ("FP1", "F7")), ("T7-P7", ("T3", "T5")), ("EEG T8-P8-1", ("T4", "T6")), ("FT9-FT10", ("FT9", "FT10")),
    ("-", None), ("", None),
])
def test_label_conventions(label: str, parsed) -> None:
    assert parse_label(label) == parsed


@pytest.mark.parametrize("convention", ["{}-REF", "EEG {}-LE", "{}", "{}.", "{}-AR", "{}-Avg", "EEG {}-Ref"])
@pytest.mark.parametrize("ten_ten", [False, True], ids=["10-20", "10-10"])
def test_every_referential_convention_reads_all_19_directly(convention: str, ten_ten: bool) -> None:
    names = [TEN_TEN.get(n, n) if ten_ten else n for n in ELECTRODES]
    # PhysioNet pads labels with dots to four characters (`C3..`); TUSZ adds EKG and 1 Hz channels.
    labels = ["EKG", "PHOTIC-REF", "IBI"] + [convention.format(n.title()).ljust(4, ".") if convention == "{}."
                                             else convention.format(n) for n in names] + ["EEG A1-REF", "Fpz."]
    montage = resolve_montage(labels)
    assert montage.direct == ELECTRODES and not montage.derived and not montage.missing
    assert [electrode_name(labels[i]) for i in montage.sources] == list(ELECTRODES)
    # Each electrode is its own signal: the map is a selection, never an arithmetic mix.
    np.testing.assert_array_equal(montage.matrix, np.eye(19, dtype=np.float32))
    signals = np.random.default_rng(0).normal(size=(19, 50)).astype(np.float32)
    np.testing.assert_array_equal(montage.apply(signals), signals)


def _potentials(nodes, n=400, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {node: rng.normal(0.0, 50.0, n) for node in nodes}


def _derivations(labels, potentials) -> np.ndarray:
    rows = []
    for label in labels:
        a, b = parse_label(label)
        rows.append(potentials[a] - (0.0 if b == REFERENCE_NODE else potentials[b]))
    return np.asarray(rows)


def _car(potentials, present) -> np.ndarray:
    block = np.zeros((19, len(next(iter(potentials.values())))))
    for i, name in enumerate(ELECTRODES):
        if present[i]:
            block[i] = potentials[name]
    return common_average_reference(block, present)


@pytest.mark.parametrize(("labels", "missing"), [
    (CHB_MIT, ("FZ", "CZ", "PZ")),  # FZ-CZ-PZ is a component of its own, smaller than the rest
    (TCP, ("FZ", "PZ")),
    # Referential and bipolar mixed (consistent): every electrode, some from both.
    ([f"{n}-REF" for n in ELECTRODES[:10]] + CHB_MIT[:16] + ["CZ-REF", "FZ-CZ", "CZ-PZ"], ()),
], ids=["chb-mit", "tcp", "mixed"])
def test_least_squares_is_exact_on_noiseless_derivations(labels, missing) -> None:
    nodes = {node for label in labels for node in parse_label(label) if node != REFERENCE_NODE} | set(ELECTRODES)
    potentials = _potentials(nodes)
    montage = resolve_montage(labels)
    assert montage.missing == missing
    assert montage.n_present == 19 - len(missing)
    signals = _derivations(labels, potentials)[list(montage.sources)].astype(np.float32)
    got = common_average_reference(montage.apply(signals), montage.present)
    # Up to float32 round-off of signals ~50 uV: exact reconstruction of the referenced potentials.
    np.testing.assert_allclose(got, _car(potentials, montage.present), atol=2e-3)
    assert not got[~montage.present].any()


def test_chb_mit_report() -> None:
    montage = resolve_montage(CHB_MIT)
    assert montage.direct == ()
    assert montage.derived == tuple(n for n in ELECTRODES if n not in ("FZ", "CZ", "PZ"))
    assert montage.missing == ("FZ", "CZ", "PZ")
    # FZ-CZ and CZ-PZ are not used (their component is not the reference frame); FT9/FT10 are.
    assert "FZ-CZ" not in montage.source_labels and "FT9-FT10" in montage.source_labels
    assert montage.summary_line().endswith("3 missing (FZ CZ PZ)")
    assert montage.refusal(12) is None


def test_redundant_noisy_derivations_are_averaged() -> None:
    # A triangle of derivations whose sum is not zero: least squares spreads the disagreement.
    labels = [f"{n}-REF" for n in ELECTRODES] + ["FP1-F7"]
    montage = resolve_montage(labels)
    assert montage.direct == ELECTRODES
    potentials = _potentials(ELECTRODES)
    signals = _derivations(labels, potentials)
    signals[-1] += 3.0  # the bipolar channel is off by 3 uV
    got = montage.apply(signals[list(montage.sources)].astype(np.float32))
    fp1, f7 = ELECTRODES.index("FP1"), ELECTRODES.index("F7")
    np.testing.assert_allclose(got[fp1] - potentials["FP1"], 1.0, atol=1e-3)
    np.testing.assert_allclose(got[f7] - potentials["F7"], -1.0, atol=1e-3)


def test_disconnected_components_largest_is_the_frame() -> None:
    # Left chain (5 electrodes) and right chain (4) not connected: the left one is kept.
    left, right = ["FP1-F7", "F7-T3", "T3-T5", "T5-O1"], ["FP2-F8", "F8-T4", "T4-T6"]
    montage = resolve_montage(right + left)
    assert set(np.array(ELECTRODES)[montage.present]) == {"FP1", "F7", "T3", "T5", "O1"}
    assert len(montage.sources) == 4
    # A referential channel joins the frame to REF: still one component, the derived potentials follow.
    montage = resolve_montage(left + ["T5-REF", "FP2-REF"])
    assert montage.direct == ("FP2", "T5") and montage.missing == tuple(
        n for n in ELECTRODES if n not in {"FP1", "FP2", "F7", "T3", "T5", "O1"})


def test_missing_electrodes_and_the_minimum() -> None:
    absent = {"O1", "CZ", "T6"}
    montage = resolve_montage([f"EEG {n}-REF" for n in ELECTRODES if n not in absent] + ["EEG EKG1-REF"])
    assert montage.missing == ("O1", "T6", "CZ")
    assert presence_string(montage.present) == "".join("0" if n in absent else "1" for n in ELECTRODES)
    np.testing.assert_array_equal(parse_presence(montage.presence_string()), montage.present)
    assert not montage.matrix[~montage.present].any()
    assert montage.refusal(16) is None
    refusal = montage.refusal(17)
    assert refusal.startswith("missing electrodes O1, T6, CZ: 16 of 19 present, fewer than preprocess.min_electrodes 17")
    assert "EEG EKG1-REF" in refusal  # the labels the file has, to see why


def test_without_takes_electrodes_off_the_cap() -> None:
    labels = [f"EEG {n}-REF" for n in ELECTRODES] + ["EEG EKG1-REF"]
    full = resolve_montage(labels)
    fewer = without(full, ["T7", "cz"])  # a 10-10 alias and any case name the same electrodes
    assert fewer.missing == ("T3", "CZ") and fewer.n_present == 17
    assert fewer.labels == full.labels
    # The same file: the sources are the remaining electrodes' own signals, in the full montage's order.
    assert set(fewer.sources) == set(full.sources) - {labels.index("EEG T3-REF"), labels.index("EEG CZ-REF")}
    assert fewer.source_labels == [s for s in full.source_labels if s not in ("EEG T3-REF", "EEG CZ-REF")]
    signals = np.random.default_rng(3).normal(size=(19, 40)).astype(np.float32)
    rows = [full.sources.index(s) for s in fewer.sources]
    np.testing.assert_array_equal(fewer.apply(signals[rows])[fewer.present], signals[rows])
    assert without(full, []).missing == ()
    with pytest.raises(ValueError, match="EKG1"):
        without(full, ["EKG1"])


def test_without_on_a_bipolar_montage_drops_every_derivation_of_the_electrode() -> None:
    chbmit = resolve_montage(CHB_MIT)
    # C3 is one link of the FP1-F3-C3-P3-O1 chain: F3 and P3 stay connected through FP1 and O1.
    fewer = without(chbmit, ["C3"])
    assert fewer.missing == ("C3", "FZ", "CZ", "PZ")
    assert not any("C3" in label for label in fewer.source_labels)
    # Exact on noiseless derivations, like the full montage.
    nodes = {node for label in CHB_MIT for node in parse_label(label) if node != REFERENCE_NODE} | set(ELECTRODES)
    potentials = _potentials(nodes)
    signals = _derivations(CHB_MIT, potentials)[list(fewer.sources)].astype(np.float32)
    got = common_average_reference(fewer.apply(signals), fewer.present)
    np.testing.assert_allclose(got, _car(potentials, fewer.present), atol=2e-3)
    # An electrode reachable only through the removed ones goes missing with them.
    # FP1 is only in FP1-F7 and FP1-F3.
    assert without(chbmit, ["F7", "F3"]).missing == ("FP1", "F3", "F7", "FZ", "CZ", "PZ")


def test_common_average_reference_over_present_electrodes_only() -> None:
    block = np.random.default_rng(1).normal(size=(19, 30)).astype(np.float32)
    present = np.ones(19, bool)
    present[[3, 7]] = False
    expected = block[present] - block[present].mean(axis=0)
    common_average_reference(block, present)
    np.testing.assert_allclose(block[present], expected, atol=1e-6)
    assert not block[~present].any()


# ----------------------------------------------------------------------------- through EDF files
def _write(path: Path, labels, rows, rate=256.0) -> Path:
    signals = [EdfSignal(label, rate, -1000.0, 1000.0) for label in labels]
    return write_edf_signals(path, signals, list(rows))


def _cap_potentials(seconds=40, rate=256, seed=2) -> dict[str, np.ndarray]:
    """Smooth random potentials (a shared rhythm plus per-electrode noise), as a cap would record."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    shared = 30 * np.sin(2 * np.pi * 10 * t)
    nodes = set(ELECTRODES) | {"FT9", "FT10"}
    return {n: shared * rng.uniform(0.5, 1.5) + rng.normal(0, 20, t.size) for n in sorted(nodes)}


def test_bipolar_edf_preprocesses_like_the_referential_one(tmp_path: Path) -> None:
    """CHB-MIT bipolar file vs the referential file of the same potentials (FZ, CZ, PZ left out of
    both): the same network input, to the EDF's 16-bit quantisation."""
    potentials = _cap_potentials()
    kept = [n for n in ELECTRODES if n not in ("FZ", "CZ", "PZ")]
    referential = _write(tmp_path / "ref.edf", [f"EEG {n}-REF" for n in kept], [potentials[n] for n in kept])
    bipolar = _write(tmp_path / "chb.edf", CHB_MIT, _derivations(CHB_MIT, potentials))
    a = preprocess_recording(read_eeg(referential, min_electrodes=12), CFG)
    b_recording = read_eeg(bipolar, min_electrodes=12)
    assert b_recording.montage.missing == ("FZ", "CZ", "PZ")
    b = preprocess_recording(b_recording, CFG)
    assert not a[16:].any() and not b[16:].any()  # FZ CZ PZ are the last three rows
    # Normalised units (1 = one spread of the channel): measured max 0.004, mean 0.0006, from the
    # 16-bit digitisation of each derivation (~0.03 uV steps) adding up along the derivation paths.
    assert np.abs(a - b).max() < 1e-2 and np.abs(a - b).mean() < 2e-3


def test_too_few_electrodes_is_refused_naming_them(tmp_path: Path) -> None:
    potentials = _cap_potentials(seconds=12)
    kept = ELECTRODES[:11]
    path = _write(tmp_path / "few.edf", [f"{n}-REF" for n in kept], [potentials[n] for n in kept])
    with pytest.raises(EdfError, match=r"missing electrodes F8, T3, T4, T5, T6, FZ, CZ, PZ: 11 of 19 present, "
                                       r"fewer than preprocess.min_electrodes 12"):
        read_eeg(path, min_electrodes=CFG.min_electrodes)
    assert resolve_header(read_edf_header(path), 11).n_present == 11


def test_edf_plus_d_segments(tmp_path: Path, write_edf_plus_d) -> None:
    # Records 0-11 s, a 20 s gap, records 32-46 s, then 50-53 s.
    onsets = [*range(12), *range(32, 47), *range(50, 54)]
    path = write_edf_plus_d(tmp_path / "gaps.edf", onsets, rate=64)
    segments = read_eeg_segments(path, expected_duration_s=54.0)
    assert [(s.offset_s, s.duration_s) for s in segments] == [(0.0, 12.0), (32.0, 15.0), (50.0, 4.0)]
    assert all(s.montage.direct == ELECTRODES for s in segments)
    assert [s.signals[0].size for s in segments] == [12 * 64, 15 * 64, 4 * 64]
    # Data: the segment's records, in order, from the one file.
    whole = read_eeg_segments(write_edf_plus_d(tmp_path / "continuous.edf", list(range(31)), rate=64), expected_duration_s=31)
    assert len(whole) == 1 and whole[0].duration_s == 31
    with pytest.raises(EdfError, match="discontinuous EDF\\+ file with 3 segments"):
        read_eeg(path)
    with pytest.raises(EdfError, match="annotation duration 31 s disagrees with the EDF duration 54 s"):
        read_eeg_segments(path, expected_duration_s=31.0)


def test_edf_plus_d_records_out_of_order_are_an_error(tmp_path: Path, write_edf_plus_d) -> None:
    path = write_edf_plus_d(tmp_path / "bad.edf", [0, 1, 2, 1.5], rate=64)
    with pytest.raises(EdfError, match="EDF\\+D data record 3 starts at 1.5 s, before the end of record 2"):
        read_eeg_segments(path)
