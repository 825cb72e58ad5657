"""`szflow stream`: the online chain against the offline one, and live LSL streams on loopback.

The LSL tests run a real liblsl outlet (a test EEG source or mne-lsl's player) and `run_stream`
on localhost, with short recordings, fast replays and timeouts on every wait, so nothing hangs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mne_lsl.lsl import StreamInfo, StreamInlet, StreamOutlet, local_clock, resolve_streams
from scipy.signal import resample_poly
from test_detect import TUSZ_LABELS, eeg_like, write_edf
from typer.testing import CliRunner

from szflow.cli import app
from szflow.config import ELECTRODES, load_params
from szflow.data.annotations import read_csv_bi
from szflow.detect import predict_file
from szflow.errors import ConfigError
from szflow.model import Detector, save_checkpoint
from szflow.postprocess import events_of_track, probs_to_events
from szflow.stream import (
    OnlineDetector,
    OnlineEvents,
    OnlineResampler,
    StreamError,
    StreamSession,
    electrode_indices,
    run_stream,
)
from szflow.stream.runner import feed_recording

RATE = 256.0
JOIN_TIMEOUT_S = 60.0
# Operating points of the tiny random model: "10" at a quantile of its own probabilities (events
# come and go), "1" with threshold 0 (every frame is seizure: one event per segment, open at once).
STEP = 7


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def project(tmp_path_factory, write_params) -> dict:
    root = tmp_path_factory.mktemp("stream_project")
    write_params(root, {"stream": {"stall_s": 0.5, "vanish_s": 4.0, "hop_s": 4.0, "lookahead_s": 5.0}})
    params = load_params(root)
    torch.manual_seed(0)
    model = Detector(params.model, mamba_impl="torch").eval()
    save_checkpoint(root / "models" / "best.pt", model=model, model_config=params.model, step=STEP)
    edf = write_edf(root / "rec_s001_t000.edf", TUSZ_LABELS, rate=250.0, duration_s=150, seed=1)
    track = predict_file(edf, model, params)
    threshold = float(np.quantile(track.probabilities, 0.7))
    points = {"10": {"smoothing_s": 2.0, "threshold": threshold, "hysteresis_low": None, "min_duration_s": 1.0,
                     "merge_gap_s": 2.0},
              "1": {"smoothing_s": 0.0, "threshold": 0.0, "hysteresis_low": None, "min_duration_s": 0.0,
                    "merge_gap_s": 0.0}}
    (root / "models" / "operating_points.json").write_text(json.dumps({"checkpoint_step": STEP, "detector": points}))
    return {"root": root, "params": params, "model": model, "edf": edf, "track": track, "points": points}


def make_session(project: dict, point: str = "10", lookahead_s: float = 5.0, rate: float = 250.0) -> StreamSession:
    params, model = project["params"], project["model"]
    return StreamSession(lambda: OnlineDetector(model, params, rate, hop_s=4.0, lookahead_s=lookahead_s,
                                                stats_window_s=600.0, device=torch.device("cpu"), precision="fp32"),
                         project["points"][point], rate)


def stream_kwargs(project: dict, tmp_path: Path, **extra) -> dict:
    root = project["root"]
    return {"checkpoint": root / "models" / "best.pt", "params_dir": root, "out_dir": tmp_path / "out",
            "device": "cpu", "resolve_timeout_s": 10.0, "handle_signals": False, "status": False, **extra}


class EegOutlet:
    """A test EEG source: 19 electrodes (TUSZ labels) at 256 Hz, time stamps from a sample count."""

    def __init__(self, source_id: str, labels: list[str] | None = None, seed: int = 0):
        labels = labels or TUSZ_LABELS
        info = StreamInfo(f"test-{source_id}", "EEG", len(labels), RATE, "float32", source_id)
        info.set_channel_names(labels)
        info.set_channel_units(["microvolts"] * len(labels))
        self.outlet = StreamOutlet(info, chunk_size=64)
        self.labels = labels
        self.rng = np.random.default_rng(seed)
        self.t0 = local_clock()
        self.n = 0

    def push(self, seconds: float, skip_s: float = 0.0) -> None:
        self.n += round(skip_s * RATE)
        count = round(seconds * RATE)
        data = np.stack([eeg_like(count, self.rng) for _ in self.labels], axis=1).astype(np.float32)
        stamps = self.t0 + (self.n + np.arange(count)) / RATE
        for first in range(0, count, 512):
            self.outlet.push_chunk(np.ascontiguousarray(data[first:first + 512]), timestamp=stamps[first:first + 512])
        self.n += count

    def wait_connected(self, lines: list[str] | None = None) -> None:
        """Until the detector's inlet is connected (and, given its output `lines`, has set up)."""
        assert self.outlet.wait_for_consumers(timeout=20), "the detector never connected"
        deadline = time.monotonic() + 20
        while lines is not None and not any(line.startswith("streaming from") for line in lines):
            assert time.monotonic() < deadline, "the detector never started"
            time.sleep(0.02)


def run_in_thread(**kwargs) -> tuple[threading.Thread, dict, list[str]]:
    result: dict = {}
    lines: list[str] = []

    def target() -> None:
        try:
            result["summary"] = run_stream(echo=lines.append, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the test, which re-raises it
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result, lines


def joined(thread: threading.Thread, result: dict):
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), "run_stream did not return"
    if "error" in result:
        raise result["error"]
    return result["summary"]


# ----------------------------------------------------------------------------- the online chain
def test_online_events_are_the_offline_events_on_the_same_probabilities():
    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(40, 600))
        p = np.abs(np.cumsum(rng.normal(0, 0.08, n)) % 2.0 - 1.0)
        low = rng.choice([None, 0.3, 0.5])
        point = {"smoothing_s": float(rng.choice([0, 2, 5])), "threshold": float(rng.choice([0.5, 0.7])),
                 "hysteresis_low": None if low is None else float(low),
                 "min_duration_s": float(rng.choice([0, 5, 10])), "merge_gap_s": float(rng.choice([0, 10, 30]))}
        duration = n / 4 - float(rng.uniform(0, 0.24))
        offline = probs_to_events(p, 4.0, duration_s=duration, **point)
        online = OnlineEvents(point, 4.0)
        alarms, events, first = [], [], 0
        while first < n:
            size = int(rng.integers(1, 30))
            a, c = online.add(first, p[first:first + size])
            alarms += a
            events += c
            first += size
        a, c = online.finish(duration)
        alarms, events = alarms + a, events + c
        assert [(e.start_s, e.stop_s) for e in events] == offline
        # One alarm per event, at its onset, never after the event was written.
        assert [a.onset_s for a in alarms] == [e.start_s for e in events]


def test_online_resampler_equals_resample_poly_of_the_whole_stream():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(len(ELECTRODES), 250 * 30)).astype(np.float32)
    resampler = OnlineResampler(250.0, 256.0)
    parts, first = [], 0
    while first < x.shape[1]:
        size = int(rng.integers(1, 700))
        parts.append(resampler.push(x[:, first:first + size]))
        first += size
    parts.append(resampler.push(x[:, :0], final=True))
    offline = resample_poly(x, 128, 125, axis=-1, padtype="edge")
    np.testing.assert_allclose(np.concatenate(parts, axis=1), offline, atol=1e-5)


def test_online_probabilities_agree_with_detect_and_ignore_block_sizes(project):
    offline = project["track"].probabilities
    tracks = []
    for block_s in (0.25, 3.7):
        session = make_session(project, lookahead_s=10.0)
        session.frame_log = []
        feed_recording(session, project["edf"], block_s=block_s)
        tracks.append(np.concatenate([block.probabilities for _, block in session.frame_log]))
    np.testing.assert_array_equal(tracks[0], tracks[1])  # how samples arrive changes nothing
    assert tracks[0].shape == offline.shape
    # Running normalisation statistics and the backward filter pass started 10 s ahead: close, not equal.
    assert np.abs(tracks[0] - offline).mean() < 0.02


def test_electrodes_resolve_from_any_labels_and_missing_ones_are_named():
    labels = ["ECG"] + [f"EEG {name}-LE" for name in ELECTRODES]
    assert electrode_indices(labels) == list(range(1, 20))
    with pytest.raises(StreamError, match="lacks electrode CZ"):
        electrode_indices([label for label in labels if "CZ" not in label])


def test_settings_are_checked_before_any_stream(project, tmp_path):
    with pytest.raises(ConfigError, match="--name or --source-id"):
        run_stream(**stream_kwargs(project, tmp_path))
    with pytest.raises(ConfigError, match="lookahead"):
        run_stream(source_id="x", lookahead_s=-1, **stream_kwargs(project, tmp_path))


# ----------------------------------------------------------------------------- live streams (loopback LSL)
def test_replay_to_detect_end_to_end_through_the_cli(project, tmp_path):
    out = tmp_path / "out"
    root = project["root"]
    result = CliRunner().invoke(app, ["stream", "--replay", str(project["edf"]), "--speed", "40",
                                      "--checkpoint", str(root / "models" / "best.pt"), "--params-dir", str(root),
                                      "--out", str(out), "--device", "cpu", "--lookahead-s", "5"])
    assert result.exit_code == 0, result.output
    assert "stopped by end" in result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["rec_s001_t000.csv_bi", "rec_s001_t000_events.tsv"]
    streamed = [(e.start, e.stop) for e in read_csv_bi(out / "rec_s001_t000.csv_bi").events]
    # The same recording fed in-process: probabilities do not depend on how samples arrive.
    expected = feed_recording(make_session(project), project["edf"]).events
    assert streamed == pytest.approx([(e.start_s, e.stop_s) for e in expected], abs=1e-3)
    assert streamed, "the operating point was chosen to give events"
    offline = events_of_track(project["track"], project["points"]["10"])
    assert offline  # the offline events, for the record; agreement is measured in benchmarks/


def test_markers_reach_a_second_inlet(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    source = EegOutlet(sid)
    thread, result, lines = run_in_thread(source_id=sid, operating_point="1", duration_s=30.0,
                                      **stream_kwargs(project, tmp_path))
    source.wait_connected(lines)
    (marker_info,) = resolve_streams(timeout=10, source_id=f"{sid}-szflow")
    markers = StreamInlet(marker_info, recover=False)
    markers.open_stream(timeout=10)
    received: list[str] = []

    def read_markers() -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while len(received) < 2 and time.monotonic() < deadline:
            try:
                data, _ = markers.pull_chunk(timeout=0.2, max_samples=1)
            except RuntimeError:  # the marker outlet closed
                return
            received.extend(row[0] for row in data)

    reader = threading.Thread(target=read_markers, daemon=True)
    reader.start()
    source.push(30.0)
    summary = joined(thread, result)
    reader.join(JOIN_TIMEOUT_S)
    kinds = [json.loads(m)["type"] for m in received]
    assert kinds == ["alarm", "event"]
    assert json.loads(received[1])["stop_s"] == pytest.approx(30.0)
    assert [e.start_s for e in summary.events] == [0.0]


def test_a_gap_restarts_the_state_and_never_invents_data(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    source = EegOutlet(sid)
    thread, result, lines = run_in_thread(source_id=sid, operating_point="1", duration_s=70.0,
                                          **stream_kwargs(project, tmp_path))
    source.wait_connected(lines)
    source.push(30.0)
    source.push(30.0, skip_s=10.0)
    summary = joined(thread, result)
    assert len(summary.gaps) == 1 and summary.gaps[0][1] == pytest.approx(10.0, abs=0.01)
    assert any(line.startswith("gap: 10.00 s") for line in lines)
    # One event per segment: the 10 s of missing samples are in none.
    assert [(round(e.start_s, 2), round(e.stop_s, 2)) for e in summary.events] == [(0.0, 30.0), (40.0, 70.0)]
    written = read_csv_bi(Path(summary.outputs[0]))
    assert written.duration_s == pytest.approx(70.0)


def test_a_stall_is_reported_and_the_stream_resumes(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    source = EegOutlet(sid)
    thread, result, lines = run_in_thread(source_id=sid, operating_point="1", duration_s=40.0,
                                          **stream_kwargs(project, tmp_path))
    source.wait_connected(lines)
    source.push(20.0)
    # stall_s is 0.5 s in this project, vanish_s 4 s: wait for the stall report, then resume.
    deadline = time.monotonic() + 10
    while not any(line.startswith("stream stalled") for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    source.push(20.0)
    summary = joined(thread, result)
    assert any(line.startswith("stream stalled") for line in lines)
    assert any(line.startswith("stream resumed") for line in lines)
    assert summary.gaps == [] and summary.stopped_by == "duration"
    assert [(e.start_s, e.stop_s) for e in summary.events] == [(0.0, 40.0)]


def test_a_vanished_stream_ends_the_run_and_keeps_what_was_written(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    source = EegOutlet(sid)
    thread, result, lines = run_in_thread(source_id=sid, operating_point="1", **stream_kwargs(project, tmp_path))
    source.wait_connected(lines)
    source.push(20.0)
    time.sleep(0.5)
    del source  # the outlet is destroyed: the stream is gone
    summary = joined(thread, result)
    assert summary.stopped_by == "error" and "is gone" in summary.error
    # The open event was closed at the last sample and written.
    assert [(e.start, e.stop) for e in read_csv_bi(Path(summary.outputs[0])).events] == [(0.0, 20.0)]


def test_a_changed_channel_set_is_a_clear_error(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    source = EegOutlet(sid)
    thread, result, lines = run_in_thread(source_id=sid, operating_point="1", **stream_kwargs(project, tmp_path))
    source.wait_connected(lines)
    source.push(20.0)
    del source
    replacement = EegOutlet(sid, labels=[*TUSZ_LABELS, "EEG A1-REF"])  # same source id, one channel more
    summary = joined(thread, result)
    assert summary.stopped_by == "error"
    assert "came back with other channels" in summary.error and "20 channels" in summary.error
    assert replacement.outlet is not None


def test_ctrl_c_closes_the_open_event_and_exits_0(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    source = EegOutlet(sid)
    root, out = project["root"], tmp_path / "out"

    def feed_then_interrupt() -> None:
        try:
            source.wait_connected()
            source.push(20.0)
            time.sleep(1.0)  # the detector reads the 20 s
        finally:  # always: the command under test runs until it is interrupted
            os.kill(os.getpid(), signal.SIGINT)

    pusher = threading.Thread(target=feed_then_interrupt, daemon=True)
    pusher.start()
    result = CliRunner().invoke(app, ["stream", "--source-id", sid, "--operating-point", "1", "--recording-id", "live",
                                      "--checkpoint", str(root / "models" / "best.pt"), "--params-dir", str(root),
                                      "--out", str(out), "--device", "cpu", "--format", "csv_bi"])
    pusher.join(JOIN_TIMEOUT_S)
    assert result.exit_code == 0, result.output
    assert "stopped by interrupt" in result.output
    assert [(e.start, e.stop) for e in read_csv_bi(out / "live.csv_bi").events] == [(0.0, 20.0)]
