"""The preprocess stage over a tiny TUSZ-layout corpus: outputs, report, bad files, failure limit,
resume, worker processes, and the cache built from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from szflow.cache import SplitStore, build_cache, check_preprocess_params
from szflow.config import Params, load_params
from szflow.data.annotations import Annotation, Event, write_csv, write_csv_bi
from szflow.data.edf import ELECTRODES
from szflow.signal.jobs import TooManyFailuresError
from szflow.stages.preprocess import preprocess_corpus
from szflow.synth.writer import EdfSignal, write_edf_signals

REPO = Path(__file__).resolve().parents[1]


def write_edf(path: Path, seconds: int, rate: int = 250, seed: int = 0, electrodes=ELECTRODES) -> np.ndarray:
    """A TUSZ-like EDF: the electrodes as `EEG <name>-REF` plus an EKG channel. Returns the EEG (uV)."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * rate) / rate
    eeg = rng.normal(0, 20, (len(electrodes), t.size)) + 30 * np.sin(2 * np.pi * 10 * t)
    labels = [f"EEG {name}-REF" for name in electrodes] + ["EKG1-REF"]
    data = [*eeg, 200 * np.sin(2 * np.pi * 1.2 * t)]
    write_edf_signals(path, [EdfSignal(label, rate, -1000.0, 1000.0) for label in labels], data)
    return eeg


def add_recording(root: Path, split: str, patient: str, index: int, seconds: int = 30,
                  seizures=((10.0, 18.0),), rate: int = 250, **edf_kwargs) -> str:
    session = "s001"
    stem = f"{patient}_{session}_t{index:03d}"
    folder = root / "edf" / split / patient / f"{session}_2002" / "01_tcp_ar"
    write_edf(folder / f"{stem}.edf", seconds, rate=rate, seed=zlib.crc32(stem.encode()), **edf_kwargs)
    annotation = Annotation(bname=stem, duration_s=float(seconds),
                            events=[Event(a, b, "fnsz", "TERM") for a, b in seizures])
    write_csv_bi(folder / f"{stem}.csv_bi", annotation)
    write_csv(folder / f"{stem}.csv", annotation)
    return stem


def make_params(tmp_path: Path, corpus: Path, **preprocess) -> Params:
    overrides = {"data.source": "tusz", "data.root": str(corpus), "preprocess.num_workers": 0,
                 **{f"preprocess.{key}": value for key, value in preprocess.items()}}
    return load_params(REPO, overrides=overrides).model_copy(update={"root": str(tmp_path)})


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    add_recording(root, "train", "aaaaaaaa", 0)
    add_recording(root, "train", "aaaaaaaa", 1, seconds=25, seizures=())
    add_recording(root, "train", "aaaaaaab", 0, rate=256, seizures=((2.5, 4.0), (20.0, 29.0)))
    add_recording(root, "dev", "aaaaaaac", 0, rate=400)
    add_recording(root, "eval", "aaaaaaad", 0, rate=512, seizures=())
    return root


def break_file(root: Path, stem: str, how: str = "truncate") -> None:
    edf = next(root.rglob(f"{stem}.edf"))
    if how == "truncate":
        data = edf.read_bytes()
        edf.write_bytes(data[: len(data) // 2])
    elif how == "header":
        data = bytearray(edf.read_bytes())
        data[236:244] = b"xx      "  # number of data records: not a number
        edf.write_bytes(bytes(data))


def test_corpus_is_preprocessed_and_reported(tmp_path, corpus):
    params = make_params(tmp_path, corpus)
    out = tmp_path / "pre"
    report = preprocess_corpus(params, out, progress=False)
    assert list(report["status"]) == ["ok"] * 5
    assert (out / "report.csv").exists() and (out / "manifest.json").exists()
    row = report.set_index("recording_id").loc["aaaaaaab_s001_t000"]
    assert row["n_samples"] == 30 * 256 and row["n_seizures"] == 2 and row["seizure_s"] == pytest.approx(10.5)
    signal = np.load(out / "train" / "aaaaaaab_s001_t000.npy")
    assert signal.dtype == np.float16 and signal.shape == (19, 30 * 256)
    assert np.isfinite(signal).all() and np.abs(signal).max() <= 10
    meta = json.loads((out / "train" / "aaaaaaab_s001_t000.json").read_text())
    assert meta["seizure_intervals"] == [[2.5, 4.0], [20.0, 29.0]]
    assert meta["seizure_samples"] == [[640, 1024], [5120, 7424]]
    assert meta["seizure_types"] == ["fnsz"] and meta["patient"] == "aaaaaaab"
    assert meta["params_hash"] == params.section_hash("preprocess")
    # Every input rate ends on the 256 Hz grid.
    dev = np.load(out / "dev" / "aaaaaaac_s001_t000.npy", mmap_mode="r")
    assert dev.shape == (19, 30 * 256)


def test_broken_file_is_reported_and_the_rest_processed(tmp_path, corpus):
    add_recording(corpus, "train", "aaaaaaae", 0)
    break_file(corpus, "aaaaaaae_s001_t000", "truncate")
    out = tmp_path / "pre"
    report = preprocess_corpus(make_params(tmp_path, corpus), out, progress=False)  # 1 of 6 <= 25%
    on_disk = pd.read_csv(out / "report.csv")
    assert len(on_disk) == 6 and set(on_disk["recording_id"]) == set(report["recording_id"])
    failed = on_disk[on_disk["status"] == "failed"]
    assert list(failed["recording_id"]) == ["aaaaaaae_s001_t000"]
    assert "truncated" in failed["reason"].iloc[0]
    assert (on_disk["status"] == "ok").sum() == 5
    assert not (out / "train" / "aaaaaaae_s001_t000.json").exists()


def test_bad_inputs_each_get_a_reason(tmp_path, corpus):
    add_recording(corpus, "train", "aaaaaaaf", 0, electrodes=ELECTRODES[:11])  # 11 < preprocess.min_electrodes
    add_recording(corpus, "train", "aaaaaaag", 0)
    csv_bi = next(corpus.rglob("aaaaaaag_s001_t000.csv_bi"))
    csv_bi.write_text(csv_bi.read_text().replace("duration = 30.00 secs", "duration = 90.00 secs")
                      .replace("30.0000,bckg", "90.0000,bckg"))
    out = tmp_path / "pre"
    with pytest.raises(TooManyFailuresError):
        preprocess_corpus(make_params(tmp_path, corpus, max_failed_fraction=0.2), out, progress=False)
    reasons = pd.read_csv(out / "report.csv").set_index("recording_id")["reason"]
    assert ("missing electrodes F8, T3, T4, T5, T6, FZ, CZ, PZ: 11 of 19 present, fewer than "
            "preprocess.min_electrodes 12") in reasons["aaaaaaaf_s001_t000"]
    assert "disagrees" in reasons["aaaaaaag_s001_t000"] or "duration" in reasons["aaaaaaag_s001_t000"]


def test_too_many_failures_fail_with_a_clear_message(tmp_path, corpus):
    break_file(corpus, "aaaaaaaa_s001_t000", "truncate")
    break_file(corpus, "aaaaaaac_s001_t000", "header")
    out = tmp_path / "pre"
    with pytest.raises(TooManyFailuresError, match=r"2 of 5 recordings failed .*max_failed_fraction 25"):
        preprocess_corpus(make_params(tmp_path, corpus), out, progress=False)
    report = pd.read_csv(out / "report.csv")  # written before failing
    assert (report["status"] == "failed").sum() == 2


def test_stage_script_exits_nonzero_with_message(tmp_path, corpus, write_params):
    break_file(corpus, "aaaaaaaa_s001_t000", "truncate")
    break_file(corpus, "aaaaaaac_s001_t000", "truncate")
    project = tmp_path / "project"
    write_params(project, {"data": {"source": "tusz", "root": str(corpus)}, "preprocess": {"max_failed_fraction": 0.25}})
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, str(REPO / "stages" / "preprocess.py")], check=False, cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "2 of 5 recordings failed" in done.stderr and "report.csv" in done.stderr
    assert (project / "data" / "preprocess" / "report.csv").exists()


def test_restart_skips_completed_recordings(tmp_path, corpus):
    params = make_params(tmp_path, corpus)
    out = tmp_path / "pre"
    preprocess_corpus(params, out, progress=False)
    target = out / "train" / "aaaaaaaa_s001_t000.npy"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    # Simulate an interrupted run: the array was written but not yet its metadata.
    (out / "train" / "aaaaaaaa_s001_t000.json").unlink()
    report = preprocess_corpus(params, out, progress=False).set_index("recording_id")
    assert not report.loc["aaaaaaaa_s001_t000", "resumed"]
    assert report.drop(index="aaaaaaaa_s001_t000")["resumed"].all()
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    assert all(after[p] == before[p] for p in before if p != target)
    # Other params: nothing is skipped.
    other = make_params(tmp_path, corpus, notch_hz=50.0)
    assert not preprocess_corpus(other, out, progress=False)["resumed"].any()


def test_worker_processes_give_identical_outputs(tmp_path, corpus):
    break_file(corpus, "aaaaaaad_s001_t000", "truncate")
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    preprocess_corpus(make_params(tmp_path, corpus), serial, progress=False)
    report = preprocess_corpus(make_params(tmp_path, corpus, num_workers=2), parallel, progress=False)
    assert (report["status"] == "ok").sum() == 4
    for path in serial.rglob("*.npy"):
        assert path.read_bytes() == (parallel / path.relative_to(serial)).read_bytes()
    assert not any(parallel.rglob("*.tmp"))


def test_cache_windows_equal_preprocessed_arrays(tmp_path, corpus):
    params = make_params(tmp_path, corpus)
    preprocess_corpus(params, tmp_path / "pre", progress=False)
    check_preprocess_params(tmp_path / "pre", params.section_hash("preprocess"))
    built = build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    assert sorted(built) == ["dev", "eval", "train"]
    store = SplitStore.open(tmp_path / "cache", "train", expected_params_hash=params.section_hash("preprocess"))
    assert list(store.index["recording_id"]) == sorted(store.index["recording_id"])
    for rid in store.index["recording_id"]:
        expected = np.load(tmp_path / "pre" / "train" / f"{rid}.npy").astype(np.float32)
        x, y, valid, _ = store.recording(rid)
        np.testing.assert_array_equal(x, expected)
        assert valid.all()
    # Labels from the annotation, on the signal's sample grid.
    y = store.labels("aaaaaaab_s001_t000")
    assert y.sum() == (1024 - 640) + (7424 - 5120) and y[640] == 1 and y[639] == 0


def test_outputs_are_identical_across_runs_and_input_mtimes(tmp_path, corpus):
    """DVC hashes data/preprocess: the same corpus must give the same bytes in every clone, even
    though a fresh clone writes the synthetic EDFs anew (new mtimes) and timings differ."""
    params = make_params(tmp_path, corpus)
    first, second = tmp_path / "first", tmp_path / "second"
    preprocess_corpus(params, first, progress=False)
    for path in corpus.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    report = preprocess_corpus(params, second, progress=False)
    assert {"seconds", "resumed"} <= set(report.columns)  # still returned to the caller
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    header = (first / "report.csv").read_text().splitlines()[0].split(",")
    assert "seconds" not in header and "resumed" not in header
    # Touching an input does not make a restarted run redo it; changing its content does.
    assert preprocess_corpus(params, second, progress=False)["resumed"].all()
    annotation = next(corpus.rglob("*.csv_bi"))
    annotation.write_text(annotation.read_text() + "\n")
    again = preprocess_corpus(params, second, progress=False)
    assert (~again["resumed"]).sum() == 1


CHB_MIT = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4",
           "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9",
           "FT9-FT10", "FT10-T8", "T8-P8"]


def test_montage_report_edf_plus_d_segments_and_presence_in_the_cache(tmp_path, write_edf_plus_d):
    """A bipolar recording, one with electrodes absent and an EDF+D file: the report names each
    recording's electrodes; the EDF+D file becomes one recording per segment, its seizures cut to
    each; the cache index carries presence and onsets."""
    root = tmp_path / "corpus"
    folder = root / "edf" / "train" / "aaaaaaaa" / "s001_2002" / "01_tcp_ar"
    add_recording(root, "train", "aaaaaaaa", 0, electrodes=[n for n in ELECTRODES if n not in ("O1", "CZ")])
    rng = np.random.default_rng(0)
    write_edf_signals(folder / "aaaaaaaa_s001_t001.edf", [EdfSignal(lb, 256, -500.0, 500.0) for lb in CHB_MIT],
                      [rng.normal(0, 30, 30 * 256) for _ in CHB_MIT])
    # EDF+D: records 0-19 s and 40-59 s; a seizure 15-45 s of file time, across the gap.
    write_edf_plus_d(folder / "aaaaaaaa_s001_t002.edf", [*range(20), *range(40, 60)], rate=256)
    for take, duration, seizures in (("t001", 30.0, []), ("t002", 60.0, [(15.0, 45.0)])):
        annotation = Annotation(f"aaaaaaaa_s001_{take}", duration, [Event(a, b, "fnsz", "TERM") for a, b in seizures])
        write_csv_bi(folder / f"aaaaaaaa_s001_{take}.csv_bi", annotation)
    params = make_params(tmp_path, root)
    report = preprocess_corpus(params, tmp_path / "pre", progress=False).set_index("recording_id")
    assert (report["status"] == "ok").all(), report["reason"].to_dict()
    absent = report.loc["aaaaaaaa_s001_t000"]
    assert (absent["n_present"], absent["missing"], absent["derived"]) == (17, "O1 CZ", "")
    bipolar = report.loc["aaaaaaaa_s001_t001"]
    assert (bipolar["n_present"], bipolar["direct"], bipolar["missing"]) == (16, "", "FZ CZ PZ")
    assert bipolar["derived"].split() == [n for n in ELECTRODES if n not in ("FZ", "CZ", "PZ")]
    first, second = report.loc["aaaaaaaa_s001_t002_at0s"], report.loc["aaaaaaaa_s001_t002_at40s"]
    assert (first["offset_s"], first["duration_s"], first["seizure_s"]) == (0.0, 20.0, 5.0)
    assert (second["offset_s"], second["duration_s"], second["seizure_s"]) == (40.0, 20.0, 5.0)
    written = pd.read_csv(tmp_path / "pre" / "report.csv")
    assert {"offset_s", "n_present", "direct", "derived", "missing"} <= set(written.columns)
    assert np.load(tmp_path / "pre" / "train" / "aaaaaaaa_s001_t001.npy")[16:].max() == 0  # FZ CZ PZ rows

    build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    store = SplitStore.open(tmp_path / "cache", "train")
    assert store.present("aaaaaaaa_s001_t000").tolist() == [n not in ("O1", "CZ") for n in ELECTRODES]
    assert store.present("aaaaaaaa_s001_t002_at40s").all()
    assert store.seizure_intervals("aaaaaaaa_s001_t002_at0s") == [(15.0, 20.0)]
    assert store.seizure_intervals("aaaaaaaa_s001_t002_at40s") == [(0.0, 5.0)]
    offsets = store.index.set_index("recording_id")["offset_s"]
    assert offsets["aaaaaaaa_s001_t002_at40s"] == 40.0 and offsets["aaaaaaaa_s001_t000"] == 0.0
    x = store.recording("aaaaaaaa_s001_t000").x
    assert not x[[ELECTRODES.index("O1"), ELECTRODES.index("CZ")]].any()
