"""Synthetic corpus: deterministic bytes, TUSZ layout, values survive the EDF round trip, broken files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from szflow.config import SynthConfig, load_params
from szflow.data.annotations import SEIZURE_LABELS, read_csv, read_csv_bi
from szflow.data.edf import ELECTRODES, electrode_name, read_edf_header, read_eeg
from szflow.errors import EdfError, SzflowError
from szflow.synth import generate_corpus, make_plan, simulate

ROOT = Path(__file__).resolve().parents[1]


def synth_config(**changes) -> SynthConfig:
    """params.yaml's synth section with `changes` (synth keys), validated like the file."""
    return load_params(ROOT, overrides={f"synth.{key}": value for key, value in changes.items()}).synth


TINY = synth_config(seed=7, patients={"train": 2, "dev": 1, "eval": 1}, recordings_per_patient=2,
                    min_duration_s=40, max_duration_s=60, seizure_recording_fraction=0.5, broken_files=3,
                    background_recordings={"train": 0, "dev": 0, "eval": 0})
PATH = re.compile(r"^edf/(train|dev|eval)/([a-z]{8})/(s\d{3})_(\d{4})/(01_tcp_ar|02_tcp_le|03_tcp_ar_a)/"
                  r"\2_\3_t\d{3}\.edf$")


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "corpus"
    summary = generate_corpus(root, TINY, progress=False)
    return root, summary


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path: Path) -> None:
    root, _ = corpus
    again = tmp_path / "again"
    generate_corpus(again, TINY, progress=False)
    first, second = all_files(root), all_files(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []

    other = tmp_path / "other"
    generate_corpus(other, TINY.model_copy(update={"seed": 8}), progress=False)
    assert all_files(other).keys() != first.keys()  # other patients, so other paths


def test_layout_and_naming(corpus) -> None:
    root, summary = corpus
    edfs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.edf"))
    assert len(edfs) == 8 == sum(summary["recordings"].values())
    for rel in edfs:
        match = PATH.match(rel)
        assert match, rel
        path = root / rel
        assert path.with_suffix(".csv").is_file() and path.with_suffix(".csv_bi").is_file()
    assert not list(root.rglob("*.tmp")) and not list(root.rglob(".*"))
    assert json.loads((root / "synth.json").read_text())["summary"] == summary


def test_patients_disjoint(corpus) -> None:
    root, _ = corpus
    patients = {split: {p.name for p in (root / "edf" / split).iterdir()} for split in ("train", "dev", "eval")}
    assert [len(v) for v in patients.values()] == [2, 1, 1]
    assert not (patients["train"] & patients["dev"] or patients["train"] & patients["eval"]
                or patients["dev"] & patients["eval"])


def test_signals_montage_and_rates(corpus) -> None:
    root, _ = corpus
    broken = {f["path"] for f in json.loads((root / "broken_files.json").read_text())["files"]}
    for spec in make_plan(TINY).recordings:
        assert 20 <= len(spec.signals) <= 41
        assert spec.rate in (250.0, 256.0, 400.0, 512.0, 1000.0)
        if spec.relpath in broken:
            continue
        header = read_edf_header(root / spec.relpath)
        suffix = {"01_tcp_ar": "-REF", "02_tcp_le": "-LE", "03_tcp_ar_a": "-REF"}[spec.montage]
        eeg = [label for label in header.labels if electrode_name(label)]
        assert len(eeg) == 19 and all(label.endswith(suffix) for label in eeg)
        assert ("EEG A1-REF" in header.labels) == (spec.montage == "01_tcp_ar")
        assert any("EKG" in label for label in header.labels)
        for label, rate in zip(header.labels, header.sample_rates):
            assert rate == (1.0 if label in ("IBI", "BURSTS", "SUPPR") else spec.rate)
        assert header.duration_s == spec.duration_s
        assert header.start_date.count(".") == 2


def test_values_survive_the_edf_round_trip(corpus) -> None:
    root, _ = corpus
    broken = {f["path"] for f in json.loads((root / "broken_files.json").read_text())["files"]}
    checked = 0
    for spec in make_plan(TINY).recordings:
        if spec.relpath in broken:
            continue
        simulated = simulate(spec)
        with pyedflib.EdfReader(str(root / spec.relpath)) as reader:
            assert reader.getSignalLabels() == [s.label for s in spec.signals]
            for i, original in enumerate(simulated.signals):
                header = reader.getSignalHeader(i)
                step = (header["physical_max"] - header["physical_min"]) / (
                    header["digital_max"] - header["digital_min"])
                read = reader.readSignal(i)
                assert read.size == original.size
                assert np.max(np.abs(read - original)) <= 0.5 * step + 1e-6 * np.max(np.abs(original)) + 1e-9
        # Our reader gives the same values in microvolts (float32), at the recording's rate.
        recording = read_eeg(root / spec.relpath)
        assert recording.sample_rates == [spec.rate] * 19
        by_label = dict(zip([s.label for s in spec.signals], simulated.signals))
        for label, signal in zip(recording.labels, recording.signals):
            np.testing.assert_allclose(signal, by_label[label], atol=0.05)
        checked += 1
    assert checked == 5


def test_annotations_match_the_plan(corpus) -> None:
    root, summary = corpus
    plan = make_plan(TINY)
    with_seizures = [spec for spec in plan.recordings if spec.seizures]
    assert len(with_seizures) == sum(summary["seizure_recordings"].values()) >= 3
    for spec in plan.recordings:
        edf = root / spec.relpath
        bi = read_csv_bi(edf.with_suffix(".csv_bi"))
        types = read_csv(edf.with_suffix(".csv"))
        assert bi.bname == spec.bname
        if spec.broken == "duration_mismatch":
            assert bi.duration_s != spec.duration_s
        else:
            assert bi.duration_s == spec.duration_s
        assert bi.seizure_intervals() == [(s.start, s.stop) for s in spec.seizures]
        for seizure in spec.seizures:
            assert 10.0 <= seizure.duration <= 300.0
            assert 0.0 < seizure.start and seizure.stop <= spec.duration_s
        assert set(types.seizure_types()) <= SEIZURE_LABELS - {"seiz"}
        assert bool(types.events) == bool(spec.seizures)
        assert {e.channel for e in types.events} <= {f"{a}-{b}" for a, b in _tcp()}
        assert all(re.fullmatch(r"[A-Z0-9]+-[A-Z0-9]+", e.channel) for e in types.events)


def _tcp():
    from szflow.synth.channels import TCP_CHANNELS
    return TCP_CHANNELS


def test_broken_files_listed_and_rejected(corpus) -> None:
    root, summary = corpus
    listed = json.loads((root / "broken_files.json").read_text())["files"]
    assert listed == summary["broken_files"]
    assert sorted(f["kind"] for f in listed) == ["bad_header", "duration_mismatch", "truncated"]
    splits = {f["split"] for f in listed}
    assert "train" in splits and splits & {"dev", "eval"}
    expected = {"truncated": "truncated", "bad_header": "bad header", "duration_mismatch": "disagrees"}
    for item in listed:
        edf = root / item["path"]
        assert item["reason"]
        duration = read_csv_bi(edf.with_suffix(".csv_bi")).duration_s
        with pytest.raises(EdfError) as info:
            read_eeg(edf, expected_duration_s=duration)
        assert expected[item["kind"]] in info.value.reason
        assert info.value.path == str(edf)
    # Every other file reads cleanly against its annotation.
    good = [p for p in root.rglob("*.edf") if p.relative_to(root).as_posix() not in {f["path"] for f in listed}]
    for edf in good:
        recording = read_eeg(edf, expected_duration_s=read_csv_bi(edf.with_suffix(".csv_bi")).duration_s)
        assert len(recording.signals) == len(ELECTRODES)


def test_rerun_replaces_own_corpus_but_refuses_foreign_tree(tmp_path: Path) -> None:
    config = TINY.model_copy(update={"patients": {"train": 1, "dev": 0, "eval": 0}, "recordings_per_patient": 1,
                                     "broken_files": 0, "min_duration_s": 20, "max_duration_s": 20})
    root = tmp_path / "c"
    generate_corpus(root, config, progress=False)
    stray = root / "edf" / "train" / "stray.txt"
    stray.write_text("old")
    generate_corpus(root, config, progress=False)
    assert not stray.exists()

    foreign = tmp_path / "tusz"
    (foreign / "edf" / "train").mkdir(parents=True)
    with pytest.raises(SzflowError, match="not a synthetic corpus"):
        generate_corpus(foreign, config, progress=False)
    assert (foreign / "edf" / "train").is_dir()


def test_seizures_stand_out_at_the_onset_site() -> None:
    """Learnable: the ictal band power at the onset site rises well above the same site's background."""
    config = synth_config(seed=3, patients={"train": 6, "dev": 0, "eval": 0}, recordings_per_patient=1,
                          min_duration_s=120, max_duration_s=120, seizure_recording_fraction=1.0,
                          broken_files=0, background_recordings={"train": 0, "dev": 0, "eval": 0})
    ratios = []
    for spec in make_plan(config).recordings:
        seizure = spec.seizures[0]
        recording = simulate(spec)
        fs = spec.rate
        labels = [s.label for s in spec.signals]
        eeg = np.stack([recording.signals[labels.index(next(s.label for s in spec.signals
                                                                 if electrode_name(s.label) == e))]
                        for e in ELECTRODES])
        eeg = eeg - eeg.mean(axis=0)
        site = ELECTRODES.index(seizure.focus) if seizure.focus in ELECTRODES else 0
        during = eeg[site, int((seizure.start + 0.5 * seizure.duration) * fs):int(seizure.stop * fs)]
        before = eeg[site, :int(seizure.start * fs)]
        ratios.append(np.std(during) / np.std(before))
    assert np.median(ratios) > 1.5, ratios


def test_seizure_frequency_is_finite_past_the_last_whole_sample():
    """The 4x corpus once produced NaN frequencies (a negative base to a fractional power)."""
    from szflow.synth.plan import SeizureSpec
    from szflow.synth.seizures import _frequency

    spec = SeizureSpec(kind="focal", label="fnsz", start=10.0, stop=40.0, focus="T3", lambda0=0.5,
                       lambda_max=1.5, spread_speed=0.05, f_start=7.0, f_end=3.0, amplitude_uv=120.0,
                       spikiness=0.3, lvfa=False, postictal_s=0.0, postictal_uv=0.0)
    fs = 250.0
    t = np.arange(int(spec.duration * fs) + 3) / fs  # runs past the duration by ~2 samples
    with np.errstate(invalid="raise"):
        f = _frequency(np.random.default_rng(0), spec, t, fs)
    assert np.isfinite(f).all() and f.min() >= 0.8


def test_more_training_patients_leave_dev_and_eval_unchanged(tmp_path: Path) -> None:
    """Each split has its own random streams: growing the training corpus never moves the benchmark."""
    small = TINY.model_copy(update={"patients": {"train": 1, "dev": 1, "eval": 1}})
    large = TINY.model_copy(update={"patients": {"train": 3, "dev": 1, "eval": 1}})
    first, second = make_plan(small), make_plan(large)
    assert len(second.split("train")) == 3 * len(first.split("train"))
    for split in ("dev", "eval"):
        a, b = first.split(split), second.split(split)
        assert [dataclasses.replace(r, index=0) for r in a] == [dataclasses.replace(r, index=0) for r in b]
    dev_a, dev_b = first.split("dev")[0], second.split("dev")[0]
    assert np.array_equal(simulate(dev_a).signals[0], simulate(dev_b).signals[0])
    generate_corpus(tmp_path / "small", small, progress=False)
    generate_corpus(tmp_path / "large", large, progress=False)
    held_out = {name: data for name, data in all_files(tmp_path / "small").items()
                if name.startswith(("edf/dev/", "edf/eval/"))}
    assert held_out and all(all_files(tmp_path / "large")[name] == data for name, data in held_out.items())
