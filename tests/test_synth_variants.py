"""Synthetic corpus: the real-world forms (bipolar montages, label conventions, absent electrodes,
EDF+D), the long background recordings and independent eval draws."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import mne
import numpy as np
import pyedflib
import pytest
import yaml
from typer.testing import CliRunner

from szflow.cli import app
from szflow.config import SPLITS, SynthConfig, load_params
from szflow.data.annotations import read_csv_bi
from szflow.data.edf import ELECTRODES, electrode_name
from szflow.synth import generate_corpus, make_plan, simulate, write_recording
from szflow.synth.channels import TCP_CHANNELS
from szflow.synth.plan import RecordingSpec
from szflow.synth.variants import (
    CHBMIT_DERIVATIONS,
    REFERENTIAL,
    VARIANT_KINDS,
    Variant,
    own_site,
    written_signals,
)
from szflow.synth.writer import (
    ANNOTATION_LABEL,
    EdfSignal,
    onset_tal,
    to_digital,
    write_edf,
    write_edf_plus_d,
)

ROOT = Path(__file__).resolve().parents[1]
NO_BACKGROUND = {"train": 0, "dev": 0, "eval": 0}
NO_VARIANTS = {kind: 0.0 for kind in VARIANT_KINDS}


def synth_config(**changes) -> SynthConfig:
    return load_params(ROOT, overrides={f"synth.{key}": value for key, value in changes.items()}).synth


TINY = synth_config(seed=4, patients={"train": 2, "dev": 1, "eval": 1}, recordings_per_patient=2,
                    min_duration_s=200, max_duration_s=240, seizure_recording_fraction=0.5, broken_files=0,
                    background_recordings=NO_BACKGROUND, variant_fractions=NO_VARIANTS)


def _spec(variant: Variant, montage: str = "01_tcp_ar", index: int = 0) -> RecordingSpec:
    """A tiny plan's recording in `montage`, in `variant`'s form (same signals whatever the form)."""
    spec = make_plan(TINY).recordings[index]
    suffix = {"01_tcp_ar": "REF", "02_tcp_le": "LE", "03_tcp_ar_a": "REF"}[montage]
    old = spec.signals[0].label.split("-")[-1]
    signals = tuple(dataclasses.replace(s, label=s.label.replace(f"-{old}", f"-{suffix}"))
                    for s in spec.signals if not (montage == "03_tcp_ar_a" and s.site in ("A1", "A2")))
    return dataclasses.replace(spec, montage=montage, signals=signals, variant=variant)


def _write(tmp_path: Path, spec: RecordingSpec) -> tuple[Path, dict[str, np.ndarray]]:
    """Simulate and write `spec`; returns the EDF and the referential signal of every listed site."""
    recording = simulate(spec)
    specs, values = written_signals(spec.variant, spec.montage, spec.signals, recording.signals,
                                    recording.extra_sites)
    path = tmp_path / f"{spec.variant.kind}_{spec.montage}.edf"
    write_edf(path, spec, values, signal_specs=specs)
    referential = {own_site(s): x for s, x in zip(spec.signals, recording.signals) if own_site(s)}
    return path, {**recording.extra_sites, **referential}


def _read(path: Path) -> dict[str, tuple[np.ndarray, float]]:
    """label -> (values, quantisation step), labels in file order (a repeated label keeps its first)."""
    out: dict[str, tuple[np.ndarray, float]] = {}
    with pyedflib.EdfReader(str(path)) as reader:
        for i, label in enumerate(reader.getSignalLabels()):
            h = reader.getSignalHeader(i)
            step = (h["physical_max"] - h["physical_min"]) / (h["digital_max"] - h["digital_min"])
            out.setdefault(label, (reader.readSignal(i), step))
    return out


def test_the_form_draws_no_random_numbers() -> None:
    plain = simulate(_spec(Variant()))
    for variant in (Variant("bipolar_chbmit"), Variant("missing_electrodes", absent=("C3",)),
                    Variant("discontinuous", gap_start_s=70.0, gap_s=20.0)):
        other = simulate(_spec(variant))
        assert all(np.array_equal(a, b) for a, b in zip(plain.signals, other.signals, strict=True))
    assert set(simulate(_spec(Variant("bipolar_chbmit"))).extra_sites) <= {"T1", "T2"}


@pytest.mark.parametrize("montage", ["01_tcp_ar", "02_tcp_le", "03_tcp_ar_a"])
def test_tcp_bipolar_is_the_difference_of_the_referential_signals(tmp_path: Path, montage: str) -> None:
    spec = _spec(Variant("bipolar_tcp"), montage)
    path, referential = _write(tmp_path, spec)
    read = _read(path)
    pairs = [p for p in TCP_CHANNELS if montage != "03_tcp_ar_a" or not {"A1", "A2"} & set(p)]
    derivations = [label for label in read if "-" in label and label.split()[-1].split("-")[1] not in
                   ("REF", "LE")]
    assert derivations == [f"EEG {a}-{b}" for a, b in pairs]
    # No referential electrode left (A1/A2 are no reference here: T4-A2 is a derivation).
    assert not [label for label in read if label.endswith(("-REF", "-LE")) and electrode_name(label)]
    for a, b in pairs:
        values, step = read[f"EEG {a}-{b}"]
        np.testing.assert_allclose(values, referential[a] - referential[b], atol=0.5 * step + 1e-3)
    # FZ and PZ are in no TCP derivation; the other 17 electrodes are.
    assert {e for p in pairs for e in p} & set(ELECTRODES) == set(ELECTRODES) - {"FZ", "PZ"}
    assert "EEG EKG1-REF" in read or "EEG EKG1-LE" in read


def test_chbmit_bipolar_in_its_names_and_order(tmp_path: Path) -> None:
    spec = _spec(Variant("bipolar_chbmit"))
    path, referential = _write(tmp_path, spec)
    with pyedflib.EdfReader(str(path)) as reader:
        labels = reader.getSignalLabels()
    assert labels[:23] == [f"{a}-{b}" for a, b in CHBMIT_DERIVATIONS]
    assert labels.count("T8-P8") == 2
    assert not [label for label in labels if label.endswith(("-REF", "-LE")) and electrode_name(label)]
    site = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6", "FT9": "T1", "FT10": "T2"}
    read = _read(path)
    for a, b in CHBMIT_DERIVATIONS:
        values, step = read[f"{a}-{b}"]
        expected = referential[site.get(a, a)] - referential[site.get(b, b)]
        np.testing.assert_allclose(values, expected, atol=0.5 * step + 1e-3)


@pytest.mark.parametrize("variant, expected, absent", [
    (Variant("labels_1010"), ["EEG T7-REF", "EEG T8-REF", "EEG P7-REF", "EEG P8-REF", "EEG FP1-REF"],
     ["EEG T3-REF", "EEG T5-REF"]),
    (Variant("labels_padded"), ["Fp1.", "Fz..", "Cz..", "T7..", "P8..", "O2..", "A1.."], ["EEG FP1-REF"]),
    (Variant("labels_suffix", suffix="-LE"), ["FP1-LE", "T3-LE", "CZ-LE"], ["EEG FP1-REF"]),
    (Variant("labels_suffix", suffix="-REF"), ["FP1-REF", "T3-REF"], ["EEG FP1-REF"]),
    (Variant("labels_suffix", suffix="-Ref"), ["Fp1-Ref", "Cz-Ref"], ["EEG FP1-REF"]),
    (Variant("missing_electrodes", absent=("C3", "O2", "PZ")), ["EEG FP1-REF", "EEG T3-REF"],
     ["EEG C3-REF", "EEG O2-REF", "EEG PZ-REF"]),
])
def test_label_forms_and_absent_electrodes_keep_the_values(tmp_path: Path, variant: Variant, expected: list[str],
                                                          absent: list[str]) -> None:
    spec = _spec(variant)
    path, _ = _write(tmp_path, spec)
    plain = _read(_write(tmp_path / "plain", _spec(Variant()))[0])
    read = _read(path)
    assert set(expected) <= set(read) and not set(absent) & set(read)
    electrodes = len(ELECTRODES) - len(variant.absent)
    assert len(read) == len(plain) - len(variant.absent)
    # Same values in the same order: only the labels differ.
    kept = [label for label in plain if label not in {f"EEG {e}-REF" for e in variant.absent}]
    for (label, (values, _)), plain_label in zip(read.items(), kept, strict=True):
        assert np.array_equal(values, plain[plain_label][0]), label
    assert electrodes >= 15


def _tals(path: Path) -> tuple[bytes, list[float], bytes]:
    """The reserved header field, every data record's onset (from its time-keeping TAL) and the raw data."""
    raw = path.read_bytes()
    n_signals = int(raw[252:256])
    header_bytes = int(raw[184:192])
    labels = [raw[256 + 16 * i:256 + 16 * (i + 1)].decode().strip() for i in range(n_signals)]
    offset = 256 + n_signals * (16 + 80 + 8 * 5 + 80)
    samples = [int(raw[offset + 8 * i:offset + 8 * (i + 1)]) for i in range(n_signals)]
    record_bytes = 2 * sum(samples)
    annotation = labels.index(ANNOTATION_LABEL)
    start = 2 * sum(samples[:annotation])
    onsets = []
    for k in range(int(raw[236:244])):
        record = raw[header_bytes + k * record_bytes:header_bytes + (k + 1) * record_bytes]
        tal = record[start:start + 2 * samples[annotation]]
        assert tal.endswith(b"\x00") and tal.split(b"\x14")[1] == b""
        onsets.append(float(tal.split(b"\x14")[0].decode()))
    return raw[192:236], onsets, raw


def test_edf_plus_d_records_gap_and_annotations_in_file_time(tmp_path: Path) -> None:
    plan_spec = next(s for s in make_plan(TINY).recordings if s.seizures)
    first = plan_spec.seizures[0]
    gap_start = float(int(first.start) - 30) if first.start > 100 else float(int(first.stop) + 10)
    spec = dataclasses.replace(plan_spec, variant=Variant("discontinuous", gap_start_s=gap_start, gap_s=17.0))
    path, _ = _write(tmp_path, spec)
    simulated = simulate(spec)
    reserved, onsets, _ = _tals(path)
    assert reserved.strip() == b"EDF+D"
    duration = int(spec.duration_s)
    g = int(gap_start)
    assert onsets == [float(t) for t in [*range(g), *range(g + 17, duration)]]
    # pyedflib (edflib) refuses EDF+D, and MNE reads it as if continuous: the samples after the gap
    # are those simulated at file time (the gap's seconds are missing).
    with pytest.raises(OSError, match="discontinuous"):
        pyedflib.EdfReader(str(path))
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    fs = spec.rate
    row = raw.ch_names.index(spec.signals[0].label)
    data = raw.get_data()[row] * 1e6
    expected = np.concatenate([simulated.signals[0][:int(g * fs)], simulated.signals[0][int((g + 17) * fs):]])
    assert data.size == expected.size
    np.testing.assert_allclose(data, expected, atol=0.05)
    # The annotations are written by the corpus in file time: the gap counts.
    out = tmp_path / "corpus"
    config = TINY.model_copy(update={"variant_fractions": TINY.variant_fractions.model_copy(
        update={"discontinuous": 0.5})})
    generate_corpus(out, config, progress=False)
    written = [s for s in make_plan(config).recordings if s.variant.kind == "discontinuous"]
    assert written
    for s in written:
        bi = read_csv_bi((out / s.relpath).with_suffix(".csv_bi"))
        assert bi.duration_s == s.duration_s
        assert bi.seizure_intervals() == [(z.start, z.stop) for z in s.seizures]
        reserved, onsets, _ = _tals(out / s.relpath)
        assert len(onsets) == s.recorded_s == s.duration_s - s.variant.gap_s
        assert all(not (s.variant.gap_start_s - 5 < z.stop and z.start < s.variant.gap_start_s + s.variant.gap_s + 5)
                   for z in s.seizures)


def test_edf_plus_layout_reads_with_edflib_when_continuous(tmp_path: Path) -> None:
    """The hand-built EDF+ header and records are what edflib expects (checked on a gapless file
    marked EDF+C, since edflib refuses any EDF+D)."""
    signals = [EdfSignal("EEG FP1-REF", 250, -500, 500), EdfSignal("IBI", 1, -32768, 32767, "")]
    x = np.random.default_rng(0).normal(0, 50, 250 * 30)
    path = write_edf_plus_d(tmp_path / "c.edf", signals, [(0.0, [to_digital(x, signals[0]),
                                                                 np.arange(30, dtype=np.int16)])])
    raw = bytearray(path.read_bytes())
    raw[192:197] = b"EDF+C"
    (tmp_path / "c2.edf").write_bytes(bytes(raw))
    with pyedflib.EdfReader(str(tmp_path / "c2.edf")) as reader:
        assert reader.filetype == pyedflib.FILETYPE_EDFPLUS
        assert reader.getSignalLabels() == ["EEG FP1-REF", "IBI"]
        assert reader.getFileDuration() == 30
        assert np.max(np.abs(reader.readSignal(0) - x)) <= 1000 / 65535
        assert np.array_equal(reader.readSignal(1), np.arange(30))
    assert onset_tal(95.0) == b"+95\x14\x14\x00" and onset_tal(0.5) == b"+0.5\x14\x14\x00"


def test_default_plan_has_every_form_in_every_split_and_leaves_the_rest_unchanged() -> None:
    config = load_params(ROOT).synth
    plan = make_plan(config)
    plain = make_plan(config.model_copy(update={
        "variant_fractions": config.variant_fractions.model_copy(update=NO_VARIANTS),
        "background_recordings": config.background_recordings.model_copy(update=NO_BACKGROUND)}))
    regular = [r for r in plan.recordings if not r.background]
    assert [dataclasses.replace(r, variant=Variant()) for r in regular] == plain.recordings
    for split in SPLITS:
        members = [r for r in plan.split(split) if not r.background]
        kinds = [r.variant.kind for r in members]
        for kind in VARIANT_KINDS:
            assert kinds.count(kind) == round(getattr(config.variant_fractions, kind) * len(members)) >= 1, (split, kind)
        assert kinds.count(REFERENTIAL) > 0.7 * len(members)
        assert not [r for r in members if r.broken and r.variant.kind != REFERENTIAL]
        for r in members:
            if r.variant.kind == "missing_electrodes":
                assert 1 <= len(r.variant.absent) <= 4 and set(r.variant.absent) <= set(ELECTRODES)
        background = [r for r in plan.split(split) if r.background]
        assert len(background) == getattr(config.background_recordings, split)
        assert all(r.duration_s == config.background_duration_s and not r.seizures
                   and r.variant.kind == REFERENTIAL for r in background)
    subjects = [r.subject for r in plan.recordings]
    assert len({(r.split, r.subject) for r in plan.recordings}) == len(set(subjects))


def test_background_recordings_have_streams_of_their_own(tmp_path: Path) -> None:
    small = TINY.model_copy(update={"background_recordings": TINY.background_recordings.model_copy(
        update={"dev": 1}), "background_duration_s": 120.0})
    large = small.model_copy(update={"patients": {"train": 3, "dev": 2, "eval": 1},
                                     "background_recordings": small.background_recordings.model_copy(
                                         update={"dev": 2})})
    a = [r for r in make_plan(small).recordings if r.background]
    b = [r for r in make_plan(large).recordings if r.background]
    assert len(a) == 1 and len(b) == 2 and a[0].duration_s == 120.0
    # More patients and more background recordings: the first background recording keeps its signals.
    assert np.array_equal(simulate(a[0]).signals[0], simulate(b[0]).signals[0])
    summary = generate_corpus(tmp_path / "c", small, progress=False)
    assert summary["background_recordings"] == {"train": 0, "dev": 1, "eval": 0}
    assert summary["background_hours"]["dev"] == round(120 / 3600, 3)
    bi = read_csv_bi((tmp_path / "c" / a[0].relpath).with_suffix(".csv_bi"))
    assert bi.duration_s == 120.0 and bi.seizure_intervals() == []


def test_eval_seed_redraws_eval_only(tmp_path: Path) -> None:
    base = make_plan(TINY)
    same = make_plan(TINY.model_copy(update={"eval_seed": TINY.seed}))
    other = make_plan(TINY.model_copy(update={"eval_seed": 99}))
    assert base.recordings == same.recordings
    for split in ("train", "dev"):
        assert other.split(split) == base.split(split)
    assert [r.subject for r in other.split("eval")] != [r.subject for r in base.split("eval")]
    assert not {r.subject for r in other.split("eval")} & {r.subject for r in other.recordings
                                                           if r.split != "eval"}
    # Writing the eval split alone gives the bytes the whole corpus holds for it.
    config = TINY.model_copy(update={"eval_seed": 99})
    generate_corpus(tmp_path / "all", config, progress=False)
    summary = generate_corpus(tmp_path / "eval", config, progress=False, splits=("eval",))
    assert summary["recordings"] == {"train": 0, "dev": 0, "eval": 2}
    files = sorted(p.relative_to(tmp_path / "eval") for p in (tmp_path / "eval" / "edf").rglob("*.*"))
    assert files and all(str(f).startswith("edf/eval/") for f in files)
    assert all((tmp_path / "eval" / f).read_bytes() == (tmp_path / "all" / f).read_bytes() for f in files)
    assert json.loads((tmp_path / "eval" / "synth.json").read_text())["config"]["eval_seed"] == 99


def test_cli_writes_another_eval_draw(tmp_path: Path) -> None:
    """`szflow synth OUT --eval-seed N --split eval`: the eval split of another draw, nothing else."""
    params = tmp_path / "project"
    params.mkdir()
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["synth"].update(TINY.model_dump(mode="json"))
    (params / "params.yaml").write_text(yaml.safe_dump(data))
    shutil.copytree(ROOT / "params", params / "params")
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "out"), "--eval-seed", "99", "--split", "eval",
                                      "--params", str(params / "params.yaml")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert summary["config"]["eval_seed"] == 99 and summary["summary"]["recordings"]["train"] == 0
    expected = {r.relpath for r in make_plan(TINY.model_copy(update={"eval_seed": 99})).split("eval")}
    assert {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.edf")} == expected


def test_a_corpus_with_every_form_reads_back(tmp_path: Path) -> None:
    config = TINY.model_copy(update={"patients": {"train": 7, "dev": 0, "eval": 0},
                                     "variant_fractions": TINY.variant_fractions.model_copy(
                                         update={kind: 1 / 7 for kind in VARIANT_KINDS})})
    summary = generate_corpus(tmp_path, config, progress=False)
    assert summary["variants"]["train"] == {kind: 2 for kind in VARIANT_KINDS}
    for spec in make_plan(config).recordings:
        path = tmp_path / spec.relpath
        if spec.variant.kind == "discontinuous":
            assert len(_tals(path)[1]) == spec.recorded_s
            continue
        with pyedflib.EdfReader(str(path)) as reader:
            assert reader.getFileDuration() == spec.duration_s
        assert read_csv_bi(path.with_suffix(".csv_bi")).duration_s == spec.duration_s


def test_write_recording_writes_one_recording_in_any_form(tmp_path: Path) -> None:
    spec = next(s for s in make_plan(TINY).recordings if s.seizures)
    for variant in (Variant(), Variant("bipolar_chbmit"), Variant("labels_padded")):
        write_recording(tmp_path / variant.kind / "r.edf", dataclasses.replace(spec, variant=variant))
    texts = {p.parent.name: p.read_text() for p in tmp_path.rglob("r.csv_bi")}
    assert len(texts) == 3 and len(set(texts.values())) == 1
    labels = {}
    for kind in texts:
        with pyedflib.EdfReader(str(tmp_path / kind / "r.edf")) as reader:
            labels[kind] = reader.getSignalLabels()
    assert "FP1-F7" in labels["bipolar_chbmit"] and "Fp1." in labels["labels_padded"]
