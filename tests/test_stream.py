"""`szflow stream`: the online chain against the offline one, and live LSL streams on loopback.

The LSL tests run a real liblsl outlet (a test EEG source or mne-lsl's player) and `run_stream`
on localhost, with short recordings, fast replays and timeouts on every wait, so nothing hangs.
Recordings in other forms (CHB-MIT bipolar, electrodes absent) come from the synthetic corpus's
writer (`szflow.synth.write_recording`): the same recording in every form.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
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
from szflow.data.edf import EegRecording, read_eeg
from szflow.data.electrodes import ElectrodeMontage, resolve_montage
from szflow.detect import predict_file, training_data_warning
from szflow.errors import ConfigError
from szflow.model import Detector, save_checkpoint
from szflow.postprocess import events_of_track, probs_to_events
from szflow.stream import (
    OnlineDetector,
    OnlineEvents,
    OnlineResampler,
    StreamError,
    StreamSession,
    presence_mask,
    run_stream,
    score_window,
    stream_montage,
)
from szflow.stream.outputs import alarm_marker
from szflow.stream.postprocess_online import Alarm
from szflow.stream.runner import feed_recording
from szflow.synth import make_plan, write_recording
from szflow.synth.variants import VARIANT_KINDS, Variant

RATE = 256.0
JOIN_TIMEOUT_S = 60.0
# Operating points of the tiny random model: "10" at a quantile of its own probabilities (events
# come and go), "1" with threshold 0 (every frame is seizure: one event per segment, open at once).
STEP = 7
CPU = torch.device("cpu")
# What the CHB-MIT bipolar montage cannot reconstruct: FZ-CZ-PZ is a chain connected to nothing else.
CHBMIT_LOSES = ("FZ", "CZ", "PZ")
SYNTH_DURATION_S = 100


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
    return {"root": root, "params": params, "model": model, "edf": edf, "recording": read_eeg(edf), "track": track,
            "points": points}


@pytest.fixture(scope="module")
def forms(project, tmp_path_factory) -> dict[str, Path]:
    """One synthetic recording written CHB-MIT bipolar, referential, and referential without the
    electrodes the bipolar montage loses (`szflow.synth.write_recording`: the same potentials)."""
    folder = tmp_path_factory.mktemp("forms")
    synth = load_params(project["root"], overrides={
        "synth.seed": 3, "synth.patients": {"train": 1, "dev": 1, "eval": 1}, "synth.recordings_per_patient": 1,
        "synth.min_duration_s": SYNTH_DURATION_S, "synth.max_duration_s": SYNTH_DURATION_S,
        "synth.seizure_recording_fraction": 0.0, "synth.broken_files": 0,
        "synth.variant_fractions": {kind: 0.0 for kind in VARIANT_KINDS}}).synth
    spec = make_plan(synth).recordings[0]
    paths = {}
    for name, variant in (("bipolar", Variant("bipolar_chbmit")), ("referential", Variant()),
                          ("referential_less", Variant("missing_electrodes", absent=CHBMIT_LOSES))):
        paths[name] = folder / f"{name}.edf"
        write_recording(paths[name], dataclasses.replace(spec, variant=variant))
    return paths


def make_session(project: dict, point: str = "10", lookahead_s: float = 5.0, rate: float = 250.0,
                 montage: ElectrodeMontage | None = None) -> StreamSession:
    """A session on a stream of `montage`'s signals (default: the project EDF's 19 referential electrodes)."""
    params, model = project["params"], project["model"]
    montage = montage or project["recording"].montage
    return StreamSession(lambda: OnlineDetector(model, params, rate, montage, hop_s=4.0, lookahead_s=lookahead_s,
                                                stats_window_s=600.0, device=CPU, precision="fp32"),
                         project["points"][point], rate)


def online_probabilities(project: dict, recording: EegRecording, lookahead_s: float = 5.0,
                         block_s: float = 0.5) -> np.ndarray:
    """The final probabilities of `recording` fed in-process to a session made for its montage."""
    session = make_session(project, lookahead_s=lookahead_s, rate=recording.sample_rates[0],
                           montage=recording.montage)
    session.frame_log = []
    feed_recording(session, recording, block_s=block_s)
    return np.concatenate([block.probabilities for _, block in session.frame_log])


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
def feed_events(online: OnlineEvents, p: np.ndarray, sizes: list[int], duration: float) -> tuple[list, list]:
    """(alarms raised or withdrawn, closed events) of `p` fed to `online` in blocks of `sizes`."""
    alarms, events, first = [], [], 0
    for size in sizes:
        a, c = online.add(first, p[first:first + size])
        alarms += a
        events += c
        first += size
    a, c = online.finish(duration)
    return alarms + a, events + c


def test_online_events_are_the_offline_events_on_the_same_probabilities():
    rng = np.random.default_rng(0)
    withdrawals = 0
    for _ in range(150):
        n = int(rng.integers(40, 600))
        p = np.abs(np.cumsum(rng.normal(0, 0.08, n)) % 2.0 - 1.0)
        low = rng.choice([None, 0.3, 0.5])
        point = {"smoothing_s": float(rng.choice([0, 2, 5])), "threshold": float(rng.choice([0.5, 0.7])),
                 "hysteresis_low": None if low is None else float(low),
                 "min_duration_s": float(rng.choice([0, 5, 10])), "merge_gap_s": float(rng.choice([0, 10, 30]))}
        duration = n / 4 - float(rng.uniform(0, 0.24))
        offline = probs_to_events(p, 4.0, duration_s=duration, **point)
        sizes = []
        while sum(sizes) < n:
            sizes.append(int(rng.integers(1, 30)))
        confirmed, events = feed_events(OnlineEvents(point, 4.0, alarm_at="confirmed"), p, sizes, duration)
        assert [(e.start_s, e.stop_s) for e in events] == offline
        # Confirmed: one alarm per event, at its onset, never withdrawn.
        assert [a.onset_s for a in confirmed] == [e.start_s for e in events]
        assert not any(a.withdrawn for a in confirmed)
        early, early_events = feed_events(OnlineEvents(point, 4.0, alarm_at="onset"), p, sizes, duration)
        assert early_events == events  # when the alarm goes off changes no event
        raised = [a for a in early if not a.withdrawn]
        withdrawn = [a for a in early if a.withdrawn]
        # Each withdrawal follows its alarm; what stays raised is one alarm per event, no later than
        # the confirmed alarm.
        for w in withdrawn:
            assert any(a.onset_s == w.onset_s and a.at_s <= w.at_s for a in raised)
            assert w.withdrawn_stop_s - w.onset_s < point["min_duration_s"]
        kept = [a for a in raised if a.onset_s not in {w.onset_s for w in withdrawn}]
        assert [a.onset_s for a in kept] == [e.start_s for e in events]
        assert all(a.at_s <= c.at_s for a, c in zip(kept, confirmed, strict=True))
        withdrawals += len(withdrawn)
    assert withdrawals > 0  # the random tracks do open events that end too short


def test_alarm_markers_say_raised_and_withdrawn():
    assert json.loads(alarm_marker(Alarm(12.25, 19.0))) == {"type": "alarm", "onset_s": 12.25, "at_s": 19.0}
    withdrawn = Alarm(12.25, 31.0, withdrawn_stop_s=20.5)
    assert withdrawn.withdrawn and not Alarm(12.25, 19.0).withdrawn
    assert json.loads(alarm_marker(withdrawn)) == {"type": "alarm_withdrawn", "onset_s": 12.25, "stop_s": 20.5,
                                                   "at_s": 31.0}


def test_online_events_refuse_an_unknown_alarm_rule():
    with pytest.raises(ValueError, match="alarm_at must be one of onset, confirmed"):
        OnlineEvents({"smoothing_s": 0.0, "threshold": 0.5, "hysteresis_low": None, "min_duration_s": 0.0,
                      "merge_gap_s": 0.0}, 4.0, alarm_at="soon")


def test_online_resampler_equals_resample_poly_of_the_whole_stream():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(len(ELECTRODES), 250 * 30)).astype(np.float32)
    resampler = OnlineResampler(250.0, 256.0, len(ELECTRODES))
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
    tracks = [online_probabilities(project, project["recording"], lookahead_s=10.0, block_s=block_s)
              for block_s in (0.25, 3.7)]
    np.testing.assert_array_equal(tracks[0], tracks[1])  # how samples arrive changes nothing
    assert tracks[0].shape == offline.shape
    # Running normalisation statistics and the backward filter pass started 10 s ahead: close, not equal.
    assert np.abs(tracks[0] - offline).mean() < 0.02


def test_stream_electrodes_are_resolved_by_the_resolver_of_detect():
    labels = ["ECG"] + [f"EEG {name}-LE" for name in ELECTRODES]
    assert stream_montage(labels, 19).sources == tuple(range(1, 20))
    # Bipolar (CHB-MIT labels, 10-10 names, a repeated derivation): 16 electrodes reconstructed.
    chbmit = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4",
              "P4-O2", "FP2-F8", "F8-T8", "T8-P8-0", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10",
              "FT10-T8", "T8-P8-1"]
    montage = stream_montage(chbmit, 12, "amp")
    assert montage.missing == CHBMIT_LOSES and len(montage.derived) == 16 and not montage.direct
    assert montage.sources == resolve_montage(chbmit).sources  # the resolver's montage, nothing else
    # Fewer than preprocess.min_electrodes: refused with the resolver's own message.
    few = labels[:12]
    refusal = resolve_montage(few).refusal(12)
    assert refusal is not None and refusal.startswith("missing electrodes F8, T3, T4, T5, T6, FZ, CZ, PZ: 11 of 19")
    with pytest.raises(StreamError, match=re.escape(f"stream 'amp': {refusal}")):
        stream_montage(few, 12, "amp")
    assert stream_montage(few, 11).n_present == 11


def test_the_presence_mask_reaches_the_model(project):
    """An electrode the stream lacks is absent for the network: its row's values change nothing,
    and every window the online detector scores carries the montage's mask."""
    params, model = project["params"], project["model"]
    montage = stream_montage([label for label in TUSZ_LABELS if "CZ" not in label], params.preprocess.min_electrodes)
    row = ELECTRODES.index("CZ")
    present = presence_mask(montage, CPU)
    assert present.dtype == torch.bool and present.shape == (1, len(ELECTRODES))
    assert present[0].tolist() == montage.present.tolist() and not present[0, row]
    assert presence_mask(stream_montage(TUSZ_LABELS, len(ELECTRODES)), CPU) is None  # all present: no mask
    rng = np.random.default_rng(5)
    window = rng.normal(size=(len(ELECTRODES), 20 * 256)).astype(np.float16)
    window[row] = 0
    noisy = window.copy()
    noisy[row] = rng.normal(0, 3, window.shape[1])
    masked = score_window(model, window, CPU, "fp32", present)
    np.testing.assert_array_equal(score_window(model, noisy, CPU, "fp32", present), masked)
    assert not np.allclose(score_window(model, noisy, CPU, "fp32"), masked)  # unmasked, the row would count

    calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    class Spy(torch.nn.Module):
        def forward(self, x, frame_mask=None, present=None):
            calls.append((x, present))
            return model(x, frame_mask, present)

    detector = OnlineDetector(Spy(), params, 250.0, montage, hop_s=4.0, lookahead_s=0.0, stats_window_s=600.0,
                              device=CPU, precision="fp32")
    blocks = detector.push(rng.normal(0, 30, size=(len(montage.sources), 250 * 20)).astype(np.float32))
    blocks += detector.finish()
    assert blocks and len(calls) >= len(blocks)
    for x, mask in calls:
        assert mask is not None and torch.equal(mask, present)
        assert not x[0, row].any() and x[0, row - 1].any()  # the absent row is zero, the others signal


def test_a_bipolar_stream_scores_as_the_referential_stream_without_the_lost_electrodes(project, forms):
    """CHB-MIT bipolar signals are mapped to the potentials as offline; the probabilities are those
    of the referential signals of the same potentials less FZ CZ PZ, to the EDF's quantisation."""
    min_electrodes = project["params"].preprocess.min_electrodes
    recordings = {name: read_eeg(path, min_electrodes=min_electrodes) for name, path in forms.items()}
    bipolar = recordings["bipolar"]
    assert bipolar.montage.missing == CHBMIT_LOSES and not bipolar.montage.direct
    assert list(recordings["referential_less"].montage.present) == list(bipolar.montage.present)
    p = {name: online_probabilities(project, recording) for name, recording in recordings.items()}
    assert p["bipolar"].shape == p["referential_less"].shape == (SYNTH_DURATION_S * 4,)
    same = np.abs(p["bipolar"] - p["referential_less"])
    other = np.abs(p["bipolar"] - p["referential"])  # the three electrodes do matter
    assert same.max() < 1e-2 and same.mean() < 0.1 * other.mean()


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
    assert files == ["rec_s001_t000.csv_bi", "rec_s001_t000.montage.json", "rec_s001_t000_events.tsv"]
    streamed = [(e.start, e.stop) for e in read_csv_bi(out / "rec_s001_t000.csv_bi").events]
    # The same recording fed in-process: probabilities do not depend on how samples arrive.
    expected = feed_recording(make_session(project), project["recording"]).events
    assert [t for event in streamed for t in event] == pytest.approx(
        [t for e in expected for t in (e.start_s, e.stop_s)], abs=1e-3)
    assert streamed, "the operating point was chosen to give events"
    offline = events_of_track(project["track"], project["points"]["10"])
    assert offline  # the offline events, for the record; agreement is measured in benchmarks/


def test_a_replay_faster_than_the_detector_waits_for_it_and_loses_nothing(project, tmp_path, monkeypatch):
    """The player runs at most REPLAY_AHEAD_S of EEG ahead of what the detector took: a slow
    detector (here 5 ms per block) slows the replay down instead of overrunning LSL's buffers."""
    from szflow.stream import runner

    monkeypatch.setattr(runner, "REPLAY_AHEAD_S", 10.0)
    players, leads = [], []
    real_start = runner.start_replay

    def start_replay(*args, **kwargs):
        player, n = real_start(*args, **kwargs)
        players.append(player)
        return player, n

    real_feed = StreamSession.feed

    def slow_feed(self, data):
        leads.append(players[0]._start_idx - players[0].consumed)
        time.sleep(0.005)
        return real_feed(self, data)

    monkeypatch.setattr(runner, "start_replay", start_replay)
    monkeypatch.setattr(StreamSession, "feed", slow_feed)
    lines: list[str] = []
    summary = run_stream(replay=project["edf"], speed=200.0, echo=lines.append, **stream_kwargs(project, tmp_path))
    assert summary.stopped_by == "end"
    assert not [line for line in lines if "samples received" in line], lines
    assert summary.stream_s == pytest.approx(project["recording"].duration_s, abs=0.01)
    chunk = players[0].chunk_size
    assert chunk < 10.0 * 250.0
    # Never more than 10 s (+ the chunk pushed after the check) ahead; unpaced it would be all of it.
    assert max(leads) <= 10.0 * 250.0 + chunk
    assert max(leads) > 5.0 * 250.0  # it did run ahead: the pacing, not the speed, held it


def test_a_bipolar_replay_is_accepted_reported_and_warned_about(project, forms, tmp_path):
    """A CHB-MIT bipolar EDF replayed through LSL: its montage line once, the montage sidecar beside
    the events, the synthetic-model warning once, the events of the same signals fed in-process."""
    root = project["root"]
    checkpoint = tmp_path / "synthetic" / "best.pt"
    training_data = {"source": "synthetic", "recordings": 3, "hours": 0.2}
    save_checkpoint(checkpoint, model=project["model"], model_config=project["params"].model, step=STEP,
                    training_data=training_data)
    lines: list[str] = []
    warnings: list[str] = []
    summary = run_stream(replay=forms["bipolar"], speed=40.0, echo=lines.append, on_warning=warnings.append,
                         **stream_kwargs(project, tmp_path, checkpoint=checkpoint,
                                         operating_points=root / "models" / "operating_points.json"))
    assert summary.stopped_by == "end"
    assert warnings == summary.warnings == [training_data_warning(checkpoint, training_data)]
    derived = " ".join(n for n in ELECTRODES if n not in CHBMIT_LOSES)
    montage_lines = [line for line in lines if "electrodes " in line]
    assert len(montage_lines) == 1
    assert f"electrodes 0 direct, 16 derived ({derived}), 3 missing (FZ CZ PZ)" in montage_lines[0]
    report = json.loads((tmp_path / "out" / "bipolar.montage.json").read_text())
    assert report["missing"] == list(CHBMIT_LOSES) and report["n_present"] == 16 and report["direct"] == []
    assert "FT9-FT10" in report["signals"] and "FZ-CZ" not in report["signals"]
    assert report["edf"] == str(forms["bipolar"]) and report["gaps"] == []
    assert report["segments"] == [[0.0, pytest.approx(SYNTH_DURATION_S)]]
    recording = read_eeg(forms["bipolar"], min_electrodes=project["params"].preprocess.min_electrodes)
    expected = feed_recording(make_session(project, rate=recording.sample_rates[0], montage=recording.montage),
                              recording).events
    assert [t for e in summary.events for t in (e.start_s, e.stop_s)] == pytest.approx(
        [t for e in expected for t in (e.start_s, e.stop_s)], abs=1e-6)


def test_a_stream_with_too_few_electrodes_is_refused_with_the_resolver_message(project, tmp_path):
    sid = f"szflow-test-{uuid.uuid4().hex[:8]}"
    labels = TUSZ_LABELS[:11]
    source = EegOutlet(sid, labels=labels)
    refusal = resolve_montage(labels).refusal(project["params"].preprocess.min_electrodes)
    assert refusal is not None
    with pytest.raises(StreamError, match=re.escape(f"stream 'test-{sid}': {refusal}")):
        run_stream(source_id=sid, **stream_kwargs(project, tmp_path))
    assert source.outlet is not None
    assert not (tmp_path / "out").exists()  # refused before anything was written


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
