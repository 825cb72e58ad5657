"""`szflow detect`: eval's network input and events reproduced exactly, long-recording chunking, bad inputs.

A tiny project is built once per module in a temporary folder: a synthetic eval split, the
preprocess and cache stages' library calls, a tiny random detector saved as `models/best.pt`,
operating points chosen so that the random model does produce events, and the eval stage itself.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from szflow import edf_store
from szflow.cache import SplitStore
from szflow.cli import app
from szflow.config import load_params
from szflow.data.annotations import read_csv_bi
from szflow.data.edf import ELECTRODES, read_edf_header, read_eeg, resolve_header
from szflow.detect import (
    InferenceSettings,
    detect_file,
    load_operating_point,
    predict_file,
    predict_segments,
    training_data_warning,
)
from szflow.edf_store import ValueCheck, prepare_store
from szflow.evaluate import read_tracks
from szflow.inference import predict_tracks
from szflow.model import Detector, save_checkpoint
from szflow.model.checkpoint import load_detector
from szflow.operating_points import uncertified_warning
from szflow.signal.chain import preprocess_recording
from szflow.signal.normalise import channel_stats, statistics_columns, statistics_sample
from szflow.signal.streaming import ChunkedSignal, ChunkedSource
from szflow.synth.writer import EdfSignal, write_edf_signals

runner = CliRunner()

ROOT = Path(__file__).resolve().parents[1]
TUSZ_LABELS = [f"EEG {name}-REF" for name in ELECTRODES]
PLAIN_LABELS = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
                "P8", "Fz", "Cz", "Pz"]


# ----------------------------------------------------------------------------- EDF writing
def eeg_like(n: int, rng: np.random.Generator, amplitude: float = 40.0) -> np.ndarray:
    """Smoothed noise with some low-frequency content: a plausible EEG-ish trace in microvolts."""
    white = rng.standard_normal(n + 64)
    smooth = np.convolve(white, np.ones(8) / np.sqrt(8), mode="same")[:n]
    drift = np.cumsum(rng.standard_normal(n)) * 0.05
    return amplitude * smooth + drift - drift.mean()


def write_edf(path: Path, labels: list[str], rate: float | list[float] = 250.0, duration_s: int = 90,
              seed: int = 0, signal=None, limit: float = 1000.0) -> Path:
    """An EDF of `labels` (one rate for all, or one per label) with 1 s records.

    `signal(index, n, rng)` gives a channel's physical values (default: `eeg_like`).
    """
    rates = [float(rate)] * len(labels) if np.isscalar(rate) else [float(r) for r in rate]
    rng = np.random.default_rng(seed)
    data = []
    for i, r in enumerate(rates):
        n = int(r * duration_s)
        data.append(signal(i, n, rng) if signal is not None else eeg_like(n, rng))
    return write_edf_signals(path, [EdfSignal(label, r, -limit, limit) for label, r in zip(labels, rates, strict=True)],
                             data)


def patch_header(path: Path, signal_index: int, field: str, value: str) -> None:
    """Overwrite one per-signal header field (EDF layout: each field for all signals in turn)."""
    widths = [("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8), ("physical_max", 8),
              ("digital_min", 8), ("digital_max", 8), ("prefilter", 80), ("samples_per_record", 8),
              ("reserved", 32)]
    data = bytearray(path.read_bytes())
    n_signals = int(data[252:256].decode())
    position = 256
    for name, width in widths:
        if name == field:
            start = position + signal_index * width
            data[start:start + width] = value.ljust(width).encode("ascii")[:width]
            path.write_bytes(bytes(data))
            return
        position += width * n_signals
    raise KeyError(field)


# ----------------------------------------------------------------------------- the tiny project
@pytest.fixture(scope="module")
def project(tmp_path_factory, eval_project) -> Path:
    root = tmp_path_factory.mktemp("detect") / "proj"
    eval_project(root, {"seed": 5, "patients": {"train": 0, "dev": 0, "eval": 2}, "recordings_per_patient": 2,
                        "min_duration_s": 70, "max_duration_s": 150, "broken_files": 0})
    return root


def detect(project: Path, *args: str) -> object:
    return runner.invoke(app, ["detect", *args, "--params-dir", str(project),
                               "--checkpoint", str(project / "models" / "best.pt")])


def eval_edfs(project: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted((project / "corpus" / "edf" / "eval").rglob("*.edf"))}


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model(project: Path):
    params = load_params(project)
    return load_detector(project / "models" / "best.pt", expected_config=params.model)[0], params


# ----------------------------------------------------------------------------- exactness
def test_network_input_is_the_cache_to_the_bit(project: Path, model) -> None:
    """Preprocessing and float16 quantisation: what the network sees is exactly what eval fed it."""
    _, params = model
    cache = SplitStore.open(project / "data" / "cache", "eval")
    edfs = eval_edfs(project)
    assert set(cache.recording_ids) == set(edfs)
    for rid, edf in edfs.items():
        store = prepare_store(edf, params, window_s=params.sampler.window_s)
        row, length = cache.row_of(rid), cache.length(rid)
        assert store.length(0) == length
        signals, cached = store.span(0, 0, length)[0], cache.span(row, 0, length)[0]
        assert signals.dtype == cached.dtype == np.float16
        np.testing.assert_array_equal(signals, cached)
        assert float(store.index["duration_s"].iat[0]) == float(cache.index["duration_s"].iat[row])


def test_probabilities_equal_evals(project: Path, model) -> None:
    """Bit-identical to eval's inference batched alike; within float32 round-off of the eval stage's
    own tracks, whose batches mix windows of several recordings."""
    detector, params = model
    edfs = eval_edfs(project)
    cache = SplitStore.open(project / "data" / "cache", "eval")
    eval_tracks = read_tracks(project / "predictions" / "eval" / "tracks.npz")
    assert eval_tracks and {t.recording_id for t in eval_tracks} == set(edfs)
    settings = InferenceSettings.from_params(params, device="cpu", batch_size=3)
    for reference in eval_tracks:
        rid = reference.recording_id
        track = predict_file(edfs[rid], detector, params, settings=settings)
        (alike,) = predict_tracks(detector, cache, [rid], window_s=settings.window_s, overlap_s=settings.overlap_s,
                                  batch_size=3, device="cpu", precision=settings.precision,
                                  frame_rate_hz=settings.frame_rate_hz, progress=False)
        assert track.duration_s == reference.duration_s
        assert track.probabilities.dtype == np.float32
        np.testing.assert_array_equal(track.probabilities, alike.probabilities)
        np.testing.assert_allclose(track.probabilities, reference.probabilities, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["csv_bi", "tsv"])
def test_cli_reproduces_eval_event_files_exactly(project: Path, tmp_path: Path, fmt: str) -> None:
    edfs = eval_edfs(project)
    points = json.loads((project / "models" / "operating_points.json").read_text())["detector"]
    n_events = 0
    for key in points:
        out = tmp_path / f"fa{key}"
        result = detect(project, str(project / "corpus" / "edf" / "eval"), "--operating-point", key,
                        "--out", str(out), "--format", fmt, "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        assert f"{len(edfs)} files: {len(edfs)} ok, 0 failed" in result.stdout
        for rid in edfs:
            name = f"{rid}.csv_bi" if fmt == "csv_bi" else f"{rid}_events.tsv"
            expected = project / "predictions" / "eval" / f"fa{key}" / fmt / name
            produced = list(out.rglob(name))
            assert len(produced) == 1, name
            assert produced[0].read_bytes() == expected.read_bytes(), (key, name)
            n_events += expected.read_text().count("seiz") if fmt == "csv_bi" else 0
    assert fmt == "tsv" or n_events > 0  # the comparison covered real events, not only empty files


def test_folder_output_keeps_the_sub_folders(project: Path, tmp_path: Path) -> None:
    result = detect(project, str(project / "corpus" / "edf"), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    for rid, edf in eval_edfs(project).items():
        relative = edf.parent.relative_to(project / "corpus" / "edf")
        assert (tmp_path / relative / f"{rid}.csv_bi").is_file()


def test_detect_file_api_equals_eval_events(project: Path, model) -> None:
    detector, params = model
    point = load_operating_point(project / "models" / "operating_points.json", "10", checkpoint_step=7)
    for rid, edf in eval_edfs(project).items():
        events = detect_file(edf, detector, params, point, settings=InferenceSettings.from_params(params, "cpu"))
        expected = read_csv_bi(project / "predictions" / "eval" / "fa10" / "csv_bi" / f"{rid}.csv_bi")
        assert [(round(a, 4), round(b, 4)) for a, b in events] == \
            [(round(e.start, 4), round(e.stop, 4)) for e in expected.events if e.label == "seiz"]


# ----------------------------------------------------------------------------- long recordings
@pytest.mark.parametrize("n", [1000, 65_536, 65_537, 400_001])
def test_statistics_columns_are_those_channel_stats_uses(n: int) -> None:
    block = np.random.default_rng(n).standard_normal((19, n)).astype(np.float32) * 7 + 3
    block[4] = 2.5  # a flat channel
    columns = statistics_columns(n)
    np.testing.assert_array_equal(block[:, columns], statistics_sample(block))
    for method in ("median_iqr", "mean_std"):
        a, b = channel_stats(block, method), channel_stats(np.ascontiguousarray(block[:, columns]), method)
        np.testing.assert_array_equal(a.centre, b.centre)
        np.testing.assert_array_equal(a.scale, b.scale)


@pytest.mark.parametrize("rates", [250.0, [250.0] * 18 + [500.0], 400.0])
def test_chunked_preprocessing_matches_one_piece(tmp_path: Path, rates) -> None:
    """Two passes over chunks give the one-piece signal up to float16 rounding at a boundary."""
    edf = write_edf(tmp_path / "x.edf", TUSZ_LABELS, rate=rates, duration_s=200, seed=3)
    cfg = load_params(ROOT).preprocess
    exact = preprocess_recording(read_eeg(edf), cfg).astype(np.float16)
    header = read_edf_header(edf)
    montage = resolve_header(header)
    chosen = list(montage.sources)
    signal = ChunkedSignal(edf, header, montage, cfg, chunk_s=45, margin_s=20)
    signal.compute_stats(ValueCheck(header, chosen).update)
    assert signal.n_out == exact.shape[1]
    with open(edf, "rb") as handle:
        chunked = np.concatenate([signal.normalised16(handle, a, min(a + 7000, signal.n_out))
                                  for a in range(0, signal.n_out, 7000)], axis=1)
    difference = np.abs(chunked.astype(np.float32) - exact.astype(np.float32))
    # float32 round-off of the recursive filters differs with where a segment starts (~5e-5 of a
    # channel's range): some samples differ, by at most one float16 step where |x| is large and by
    # a few 1e-4 (units of the channel's spread) near zero, where float16 steps are finer.
    step = np.spacing(np.maximum(np.abs(exact), np.abs(chunked))).astype(np.float32)
    assert np.all(difference <= np.maximum(step, 1e-3))
    assert difference.mean() < 2e-4


def test_chunked_inference_matches_exact_inference(project: Path, model) -> None:
    detector, params = model
    # fp32: under bf16 the chunk-boundary round-off of the filters is amplified past the bound.
    settings = dataclasses.replace(InferenceSettings.from_params(params, device="cpu", batch_size=2),
                                   precision="fp32")
    for edf in eval_edfs(project).values():
        exact = predict_file(edf, detector, params, settings=settings)
        chunked = predict_file(edf, detector, params, settings=settings, max_exact_s=0, chunk_s=40, margin_s=20)
        assert chunked.probabilities.shape == exact.probabilities.shape
        np.testing.assert_allclose(chunked.probabilities, exact.probabilities, atol=2e-3)


def test_high_rate_recordings_are_chunked_by_their_memory_need(project: Path, model, monkeypatch) -> None:
    detector, params = model
    settings = InferenceSettings.from_params(params, device="cpu")
    edf = next(iter(eval_edfs(project).values()))
    exact = predict_file(edf, detector, params, settings=settings)
    used = []
    close = ChunkedSource.close
    monkeypatch.setattr(edf_store, "EXACT_MAX_BYTES", 0)
    monkeypatch.setattr(ChunkedSource, "close", lambda self: used.append(self.n_samples) or close(self))
    # Default chunk (30 min) longer than the recording: one chunk, no chunk boundary inside.
    chunked = predict_file(edf, detector, params, settings=settings)
    assert used, "the chunked path was not taken"
    np.testing.assert_allclose(chunked.probabilities, exact.probabilities, atol=2e-3)


# ----------------------------------------------------------------------------- inputs that work
def test_plain_labels_other_rate_and_extra_channels(project: Path, tmp_path: Path) -> None:
    labels = PLAIN_LABELS[::-1] + ["EKG", "Photic"]  # any order, extra signals ignored
    write_edf(tmp_path / "in" / "plain.edf", labels, rate=200.0, duration_s=45)
    result = detect(project, str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--format", "tsv")
    assert result.exit_code == 0, result.output
    produced = (tmp_path / "out" / "plain_events.tsv").read_text()
    assert produced.startswith("onset\tduration\teventType")


def test_bids_name_gives_szcore_events_name(project: Path, tmp_path: Path) -> None:
    name = "sub-01_ses-01_task-szMonitoring_run-00_eeg.edf"
    write_edf(tmp_path / "bids" / "sub-01" / "ses-01" / "eeg" / name, PLAIN_LABELS, duration_s=30)
    result = detect(project, str(tmp_path / "bids"), "--out", str(tmp_path / "out"), "--format", "tsv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "sub-01" / "ses-01" / "eeg" /
            "sub-01_ses-01_task-szMonitoring_run-00_events.tsv").is_file()


CHB_MIT = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4",
           "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8",
           "T8-P8"]


def test_bipolar_file_and_its_montage_report(project: Path, tmp_path: Path) -> None:
    """A CHB-MIT bipolar file is analysed; the printed line and the JSON sidecar say which electrodes
    were reconstructed and which are missing."""
    write_edf(tmp_path / "in" / "chb01_03.edf", CHB_MIT, rate=256.0, duration_s=40)
    write_edf(tmp_path / "in" / "ref.edf", TUSZ_LABELS[:-1], duration_s=40)  # PZ absent
    result = detect(project, str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("ok: ")}
    derived = " ".join(n for n in ELECTRODES if n not in ("FZ", "CZ", "PZ"))
    assert lines[str(tmp_path / "in" / "chb01_03.edf")].endswith(
        f"; electrodes 0 direct, 16 derived ({derived}), 3 missing (FZ CZ PZ))")
    assert lines[str(tmp_path / "in" / "ref.edf")].endswith("; electrodes 18 direct, 0 derived, 1 missing (PZ))")
    report = json.loads((tmp_path / "out" / "chb01_03.montage.json").read_text())
    assert report["direct"] == [] and report["missing"] == ["FZ", "CZ", "PZ"] and report["n_present"] == 16
    assert report["segments"] == [[0.0, 40.0]] and report["gaps"] == [] and report["duration_s"] == 40.0
    assert "FT9-FT10" in report["signals"] and "FZ-CZ" not in report["signals"]


def test_edf_plus_d_segments_events_in_file_time(project: Path, model, tmp_path: Path, write_edf_plus_d) -> None:
    """Each continuous segment is analysed as if it were its own file; the file-time track holds 0 in
    the gap, events are shifted to file time, and the gap is reported."""
    detector, params = model
    rate, rng = 256, np.random.default_rng(4)
    onsets = [*range(40), *range(70, 115)]  # 40 s, a 30 s gap, 45 s
    rows = [eeg_like(len(onsets) * rate, rng) for _ in ELECTRODES]
    path = write_edf_plus_d(tmp_path / "in" / "gappy.edf", onsets, rate=rate, rows=rows)
    alone = write_edf(tmp_path / "second.edf", TUSZ_LABELS, rate=float(rate), duration_s=45,
                      signal=lambda i, n, _: rows[i][40 * rate:])
    settings = InferenceSettings.from_params(params, device="cpu")
    prediction = predict_segments(path, detector, params, settings=settings)
    assert [(offset, track.duration_s) for offset, track in prediction.segment_tracks] == [(0.0, 40.0), (70.0, 45.0)]
    assert prediction.gaps == [(40.0, 70.0)] and prediction.track.duration_s == 115.0
    second = predict_file(alone, detector, params, settings=settings)
    np.testing.assert_array_equal(prediction.segment_tracks[1][1].probabilities, second.probabilities)
    fr = settings.frame_rate_hz
    assert not prediction.track.probabilities[round(40 * fr):round(70 * fr)].any()
    np.testing.assert_array_equal(prediction.track.probabilities[round(70 * fr):], second.probabilities)
    # Events at a threshold every frame passes: one per segment, in file time, none across the gap.
    point = {**load_operating_point(project / "models" / "operating_points.json", "10", checkpoint_step=7),
             "threshold": 0.0, "hysteresis_low": None, "min_duration_s": 0.0}
    assert prediction.events(point) == [(0.0, 40.0), (70.0, 115.0)]
    result = detect(project, str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "; electrodes 19 direct, 0 derived, 0 missing; 2 segments, 1 gap (30 s) without data)" in result.stdout
    report = json.loads((tmp_path / "out" / "gappy.montage.json").read_text())
    assert report["segments"] == [[0.0, 40.0], [70.0, 115.0]] and report["gaps"] == [[40.0, 70.0]]
    assert "duration = 115.00 secs" in (tmp_path / "out" / "gappy.csv_bi").read_text()


# ----------------------------------------------------------------------------- bad inputs
def _flat(i, n, rng):
    return np.full(n, 12.0)


def _nan_patch(path: Path) -> None:
    # Scaling a sample with this range overflows float32: inf, and NaN for 0 * inf.
    patch_header(path, 3, "physical_min", "-9e99")
    patch_header(path, 3, "physical_max", "9e99")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 7])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an EDF file at all" * 20)


def _discontinuous(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[192:236] = b"EDF+D".ljust(44)
    path.write_bytes(bytes(data))


BAD_CASES = {
    # Fewer than preprocess.min_electrodes (12) of the 19: refused, naming the missing ones.
    "missing_electrodes": ({"labels": TUSZ_LABELS[:11]}, None,
                           "missing electrodes F8, T3, T4, T5, T6, FZ, CZ, PZ: 11 of 19 present"),
    "truncated": ({}, _truncate, "truncated"),
    "unreadable": ({}, _garbage, "bad header"),
    "empty_file": ({}, lambda p: p.write_bytes(b""), "truncated"),
    # A physical range beyond float32 would scale to inf/NaN samples: the reader refuses the header.
    "non_finite": ({}, _nan_patch, ("bad header: signal 'EEG F4-REF' physical range [-9e+99, 9e+99] "
                                    "overflows float32")),
    "flat": ({"signal": _flat}, None, "flat recording"),
    "too_short": ({"duration_s": 6}, None, "recording is 6 s long; detection needs at least 10 s"),
    "discontinuous_without_onsets": ({}, _discontinuous,
                                     "EDF+D file without an 'EDF Annotations' signal: its records' onsets are unknown"),
    "rate": ({"rate": 20.0}, None, "is sampled at 20 Hz; detect reads EEG sampled at 32-20000 Hz"),
}


def make_bad(folder: Path, case: str) -> Path:
    kwargs, mutate, _ = BAD_CASES[case]
    kwargs = {"labels": TUSZ_LABELS, "duration_s": 30, **kwargs}
    path = write_edf(folder / f"{case}.edf", kwargs.pop("labels"), **kwargs)
    if mutate is not None:
        mutate(path)
    return path


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_one_clear_line_and_exit_1(project: Path, tmp_path: Path, case: str) -> None:
    path = make_bad(tmp_path, case)
    result = detect(project, str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert BAD_CASES[case][2] in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_console_script_prints_one_line_for_a_bad_file(project: Path, tmp_path: Path) -> None:
    """The installed `szflow` command, in its own process: no warnings, tracebacks or bars on stderr."""
    import subprocess
    import sys

    path = make_bad(tmp_path, "non_finite")
    result = subprocess.run(
        [sys.executable, "-c", "from szflow.cli import app; app()", "detect", str(path), "--params-dir",
         str(project), "--checkpoint", str(project / "models" / "best.pt"), "--out", str(tmp_path / "out")],
        check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    expected = f"error: {path}: {BAD_CASES['non_finite'][2]}"
    assert result.stderr.splitlines() == [expected], result.stderr


def test_folder_with_bad_files_completes_the_others(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    bad = {case: make_bad(folder / "bad", case) for case in BAD_CASES}
    good = [write_edf(folder / "good" / f"ok{i}.edf", TUSZ_LABELS, duration_s=20 + 10 * i, seed=i)
            for i in range(2)]
    result = detect(project, str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = stderr_lines(result)
    assert len(lines) == len(bad)
    for case, path in bad.items():
        assert any(line.startswith(f"error: {path}: ") and BAD_CASES[case][2] in line for line in lines), case
    for path in good:
        assert (tmp_path / "out" / "good" / f"{path.stem}.csv_bi").is_file()
    summary = result.stdout
    assert f"{len(bad) + len(good)} files: {len(good)} ok, {len(bad)} failed" in summary
    for path in bad.values():
        assert f"failed: {path}: " in summary


def test_missing_path_and_empty_folder_are_file_failures(project: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    good = write_edf(tmp_path / "good.edf", TUSZ_LABELS, duration_s=20)
    result = detect(project, str(tmp_path / "nope.edf"), str(tmp_path / "empty"), str(good),
                    "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = stderr_lines(result)
    assert lines == [f"error: {tmp_path / 'nope.edf'}: file not found",
                     f"error: {tmp_path / 'empty'}: no .edf files in this folder"]
    assert (tmp_path / "out" / "good.csv_bi").is_file()


def test_two_inputs_with_one_output_name_never_overwrite(project: Path, tmp_path: Path) -> None:
    a = write_edf(tmp_path / "a" / "same.edf", TUSZ_LABELS, duration_s=20, seed=1)
    b = write_edf(tmp_path / "b" / "same.edf", TUSZ_LABELS, duration_s=20, seed=2)
    result = detect(project, str(a), str(b), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert stderr_lines(result) == [(f"error: {b}: its output {tmp_path / 'out' / 'same.csv_bi'} would "
                                    f"overwrite that of {a}")]


def test_a_synthetic_trained_model_is_flagged_once_per_run(project: Path, tmp_path: Path) -> None:
    params = load_params(project)
    model, ckpt = load_detector(project / "models" / "best.pt", expected_config=params.model)
    path = tmp_path / "models" / "best.pt"
    data = {"source": "synthetic", "root": "data/synth", "corpus_fingerprint": "abc", "recordings": 12, "hours": 1.5}
    save_checkpoint(path, model=model, model_config=params.model, step=ckpt.step, training_data=data)
    (tmp_path / "models" / "operating_points.json").write_bytes(
        (project / "models" / "operating_points.json").read_bytes())
    edfs = eval_edfs(project)
    result = runner.invoke(app, ["detect", str(project / "corpus" / "edf" / "eval"), "--params-dir", str(project),
                                 "--checkpoint", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"{len(edfs)} files: {len(edfs)} ok, 0 failed" in result.stdout
    (line,) = stderr_lines(result)  # one warning for the run, not one per file
    assert line.startswith(f"warning: {path} was trained on the synthetic corpus only (12 recordings, 1.5 h")
    assert "never seen real EEG" in line and "not to be trusted" in line
    assert training_data_warning(path, {**data, "source": "tusz"}) is None
    assert training_data_warning(path, {}) is None


def test_an_uncertified_operating_point_is_flagged(project: Path, tmp_path: Path) -> None:
    frozen = json.loads((project / "models" / "operating_points.json").read_text())
    frozen["detector"]["1"].update({"certified": False, "hours_scored": 58.9, "hours_needed": 127.7})
    frozen["detector"]["10"]["certified"] = True
    points = tmp_path / "operating_points.json"
    points.write_text(json.dumps(frozen))
    edf = next(iter(eval_edfs(project).values()))
    base = ["detect", str(edf), "--params-dir", str(project), "--checkpoint", str(project / "models" / "best.pt"),
            "--operating-points", str(points), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*base, "--operating-point", "1"])
    assert result.exit_code == 0, result.output
    (line,) = stderr_lines(result)
    assert line.startswith("warning: operating point 1 FA/24h is not certified")
    assert "in dev's 58.9 h" in line and "at least 127.7 h" in line
    assert uncertified_warning(points, "10") is None
    result = runner.invoke(app, [*base, "--operating-point", "10"])
    assert result.exit_code == 0 and stderr_lines(result) == []


def test_checkpoint_of_another_model_config(project: Path, tmp_path: Path) -> None:
    other = load_params(project, overrides={"model.d_model": 24}).model
    path = tmp_path / "other.pt"
    save_checkpoint(path, model=Detector(other, mamba_impl="torch"), model_config=other, step=7)
    edf = write_edf(tmp_path / "x.edf", TUSZ_LABELS, duration_s=20)
    result = runner.invoke(app, ["detect", str(edf), "--params-dir", str(project), "--checkpoint", str(path),
                                 "--operating-points", str(project / "models" / "operating_points.json"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = stderr_lines(result)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: model config differs") and "d_model: checkpoint 24" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "edf"], "--format 'edf' is not one of csv_bi, tsv"),
    (["--operating-point", "7"], "no operating point for 7 FA/24h (available: 10, 5, 2.5, 1)"),
    (["--operating-point", "ten"], "--operating-point 'ten' is not a number"),
    (["--operating-points", "/nonexistent/op.json"], "operating points not found"),
    (["--device", "tpu"], "is not one of auto, cpu, cuda"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_usage_errors_exit_2(project: Path, tmp_path: Path, args: list[str], message: str) -> None:
    edf = write_edf(tmp_path / "x.edf", TUSZ_LABELS, duration_s=20)
    result = detect(project, str(edf), "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2, result.output
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_operating_points_of_another_checkpoint_step(project: Path, tmp_path: Path) -> None:
    frozen = json.loads((project / "models" / "operating_points.json").read_text())
    frozen["checkpoint_step"] = 99
    points = tmp_path / "op.json"
    points.write_text(json.dumps(frozen))
    edf = write_edf(tmp_path / "x.edf", TUSZ_LABELS, duration_s=20)
    result = detect(project, str(edf), "--operating-points", str(points), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert stderr_lines(result) == [(f"error: {points}: tuned for checkpoint step 99, but the checkpoint is step 7: "
                                    "re-run the dev stage or pass the matching --operating-points")]


def test_cuda_without_gpu_is_refused(project: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    edf = write_edf(tmp_path / "x.edf", TUSZ_LABELS, duration_s=20)
    result = detect(project, str(edf), "--device", "cuda", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "no CUDA device is available" in result.stderr


def test_unwritable_output_is_a_file_failure(project: Path, tmp_path: Path) -> None:
    edf = write_edf(tmp_path / "x.edf", TUSZ_LABELS, duration_s=20)
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    result = detect(project, str(edf), "--out", str(blocker))
    assert result.exit_code == 1
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"error: {edf}: ")
    assert blocker.read_text() == "a file where the output folder should be"
