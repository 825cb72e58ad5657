"""`szflow stream`: live detection on an LSL stream, and its replay mode.

`StreamSession` is the pipeline without the transport: raw signal blocks in (`feed`), alarms
and closed events out (console, event files, LSL markers). A gap in the stream ends a segment
(its open event is closed, its state dropped) and starts a new one at the new time: nothing is
filled in. `run_stream` connects an `LslSource` to a session and runs until `--duration-s`, the
end of a replay, Ctrl-C (SIGINT/SIGTERM: the open event is closed and written, exit 0), or a
stream that vanished or changed its channels (what was written is kept, exit 1). At connect it
prints the stream's electrodes as `szflow detect` prints a file's (direct / derived / missing) and
writes the montage sidecar beside the event files; a checkpoint trained on synthetic EEG only is
warned about once, as `szflow detect` warns.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from szflow.config import Params, load_params
from szflow.data.edf import EegRecording, read_eeg
from szflow.data.electrodes import ElectrodeMontage
from szflow.detect import OPERATING_POINTS_NAME, InferenceSettings, electrodes_line, run_warnings
from szflow.edf_store import recording_id
from szflow.errors import ConfigError, InputFileError
from szflow.inference import resolve_precision
from szflow.model.checkpoint import load_detector
from szflow.operating_points import load_operating_point
from szflow.stream.detector_online import FrameBlock, OnlineDetector
from szflow.stream.outputs import EventFiles, MarkerOutlet, alarm_marker, event_marker, montage_report
from szflow.stream.postprocess_online import Alarm, ClosedEvent, OnlineEvents
from szflow.stream.source import Gap, LslSource, Samples, Stalled, StreamError

log = logging.getLogger("szflow.stream")

# How often the terminal status line is redrawn (wall seconds).
STATUS_EVERY_S = 1.0
# How long a replay waits for the detector's inlet to connect before it plays anyway.
CONNECT_TIMEOUT_S = 30.0
SUBSCRIBE_GRACE_S = 1.0
# How far (seconds of EEG) a replay's player may run ahead of what the detector has taken. LSL keeps
# 360 s of samples in the outlet and in the inlet and drops older ones, so a replay faster than the
# detector keeps up would otherwise lose samples; the player waits instead.
REPLAY_AHEAD_S = 60.0


@dataclass
class StreamSummary:
    stream: str = ""
    stream_s: float = 0.0  # seconds of EEG received (gaps included)
    wall_s: float = 0.0
    alarms: list[Alarm] = field(default_factory=list)  # raised
    withdrawn: list[Alarm] = field(default_factory=list)  # alarms withdrawn: their event ended too short
    events: list[ClosedEvent] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (stream time, missing seconds)
    outputs: list[str] = field(default_factory=list)
    stopped_by: str = ""  # duration | end | interrupt | error
    error: str = ""
    montage: ElectrodeMontage | None = None  # the stream's electrodes (set at connect)
    warnings: list[str] = field(default_factory=list)  # about the run as a whole (the model's training data)

    @property
    def realtime_factor(self) -> float:
        return self.stream_s / self.wall_s if self.wall_s > 0 else math.inf


class StreamSession:
    """Online detector + online events + outputs, segment by segment (see the module docstring)."""

    def __init__(self, make_detector: Callable[[], OnlineDetector], point: dict, input_rate_hz: float, *,
                 files: EventFiles | None = None, markers: MarkerOutlet | None = None,
                 on_alarm: Callable[[Alarm], None] | None = None,
                 on_event: Callable[[ClosedEvent], None] | None = None, alarm_at: str = "onset"):
        self.make_detector = make_detector
        self.point = point
        self.alarm_at = alarm_at
        self.input_rate_hz = float(input_rate_hz)
        self.files, self.markers = files, markers
        self.on_alarm, self.on_event = on_alarm, on_event
        self.summary = StreamSummary()
        self.detector: OnlineDetector | None = None
        self.events: OnlineEvents | None = None
        self.segment_start_s = 0.0
        self.segment_samples = 0
        self.last_probability = math.nan
        self.final_s = 0.0  # stream time up to which probabilities are final
        self.frame_log: list[tuple[float, np.ndarray]] | None = None  # (segment start, block): benchmarks

    @property
    def stream_s(self) -> float:
        return self.segment_start_s + self.segment_samples / self.input_rate_hz

    def _start_segment(self) -> None:
        self.detector = self.make_detector()
        self.events = OnlineEvents(self.point, self.detector.frame_rate_hz, time_offset_s=self.segment_start_s,
                                   alarm_at=self.alarm_at)
        self.segment_samples = 0

    def _handle(self, alarms: list[Alarm], closed: list[ClosedEvent]) -> None:
        for alarm in alarms:
            (self.summary.withdrawn if alarm.withdrawn else self.summary.alarms).append(alarm)
            if self.markers is not None:
                self.markers.push(alarm_marker(alarm))
            if self.on_alarm is not None:
                self.on_alarm(alarm)
        for event in closed:
            self.summary.events.append(event)
            if self.files is not None:
                self.files.append(event, self.stream_s)
            if self.markers is not None:
                self.markers.push(event_marker(event))
            if self.on_event is not None:
                self.on_event(event)

    def _frames(self, blocks: list[FrameBlock], final: bool = False) -> None:
        rate = self.detector.frame_rate_hz
        for block in blocks:
            if self.frame_log is not None:
                self.frame_log.append((self.segment_start_s, block))
            self._handle(*self.events.add(block.first_frame, block.probabilities))
            self.last_probability = float(block.probabilities[-1])
            self.final_s = self.segment_start_s + (block.first_frame + block.probabilities.size) / rate

    def feed(self, data: np.ndarray) -> None:
        """Raw samples (len(montage.sources), n) of the montage's signals, microvolts, continuing the
        current segment."""
        if self.detector is None:
            self._start_segment()
        self.segment_samples += data.shape[1]
        self._frames(self.detector.push(data))

    def end_segment(self) -> None:
        """Close the current segment: its last frames, its open event."""
        if self.detector is None:
            return
        self._frames(self.detector.finish())
        self._handle(*self.events.finish(self.segment_samples / self.input_rate_hz))
        self.segment_start_s = self.stream_s
        self.detector = self.events = None
        self.segment_samples = 0

    def gap(self, missing_s: float) -> None:
        """Samples were lost: end the segment, restart after `missing_s` of stream time."""
        at = self.stream_s
        self.end_segment()
        self.summary.gaps.append((at, missing_s))
        self.segment_start_s = at + missing_s

    def close(self) -> StreamSummary:
        self.end_segment()
        self.summary.stream_s = self.stream_s
        if self.files is not None:
            self.files.write(self.stream_s)
            self.summary.outputs = [str(p) for p in self.files.paths]
        return self.summary


# ----------------------------------------------------------------------------- replay
def start_replay(path: str | Path, speed: float, name: str, source_id: str, min_electrodes: int):
    """Play an EDF's EEG as an LSL stream (mne-lsl's player), `speed` times real time, but never
    more than REPLAY_AHEAD_S of EEG ahead of the detector (`player.consumed`): a replay asked to go
    faster than the detector goes at the detector's speed and loses nothing.

    Returns (player, n_samples). The signals are those the electrode resolver reads from the file
    (referential electrodes or bipolar derivations, under their own labels), read by szflow's EDF
    reader (the values `szflow detect` reads), in volts, as MNE keeps EEG; a file with fewer than
    `min_electrodes` electrodes is refused as `szflow detect` refuses it.
    """
    import mne  # mne and mne-lsl load only for a replay
    from mne_lsl.player import PlayerLSL

    recording = read_eeg(path, min_electrodes=min_electrodes)
    if len(set(recording.sample_rates)) != 1:
        raise InputFileError(path, f"EEG signals at different sample rates {sorted(set(recording.sample_rates))} "
                                   "cannot be replayed as one LSL stream")
    rate = float(recording.sample_rates[0])
    data = np.stack(recording.signals).astype(np.float64) * 1e-6
    if data.shape[1] == 0:
        raise InputFileError(path, "no samples to replay")
    info = mne.create_info(list(recording.labels), rate, "eeg", verbose="error")
    raw = mne.io.RawArray(data, info, verbose="error")
    # Chunks of ~20 ms of wall time (the player sleeps once per chunk), at most 10 s of EEG so that
    # the pacing below keeps far inside LSL's 360 s buffers however fast the replay is asked to go.
    chunk = max(1, min(math.ceil(0.02 * rate * speed), round(10.0 * rate)))
    ahead = round(REPLAY_AHEAD_S * rate)

    class FastPlayer(PlayerLSL):
        waited = False
        # Set by the reader once it has every sample: the outlet stays open until then, since
        # samples still in flight when an outlet closes are lost.
        delivered = threading.Event()
        consumed = 0  # samples the reader has taken (set by it)

        def start(self):
            super().start()
            # mne-lsl's player paces chunks at chunk / sfreq; a replay faster than real time
            # shortens that wait (the time stamps then advance faster than the samples' rate).
            self._streaming_delay = self.chunk_size / self.info["sfreq"] / speed
            return self

        def _stream(self):
            # An inlet receives only samples pushed after it has subscribed: hold the first chunk
            # until the detector's inlet is there, plus a margin while it finishes setting up.
            if not self.waited:
                self.waited = True
                if self._outlet.wait_for_consumers(timeout=CONNECT_TIMEOUT_S):
                    time.sleep(SUBSCRIBE_GRACE_S)
            # Paced by the detector (REPLAY_AHEAD_S); a reader that stopped sets `delivered`.
            while self._start_idx - self.consumed > ahead and not self.delivered.is_set():
                time.sleep(0.005)
            super()._stream()

        def _del_outlets(self):
            self.delivered.wait(timeout=CONNECT_TIMEOUT_S)
            super()._del_outlets()

    player = FastPlayer(raw, chunk_size=chunk, n_repeat=1, name=name, source_id=source_id)
    player.start()
    return player, data.shape[1]


def feed_recording(session: StreamSession, recording: EegRecording, block_s: float = 0.5) -> StreamSummary:
    """Feed a read EDF's signals (`read_eeg`: those its montage reads) to `session` in blocks of
    `block_s`, in this process (no LSL), and close it: what a replay delivers, without the transport
    (tests and benchmarks). The session's detectors must be made for `recording.montage`."""
    if len(set(recording.sample_rates)) != 1:
        raise InputFileError(recording.path, "EEG signals at different sample rates cannot be fed as one stream")
    data = np.stack(recording.signals)
    step = max(1, round(block_s * recording.sample_rates[0]))
    for first in range(0, data.shape[1], step):
        session.feed(data[:, first:first + step])
    return session.close()


# ----------------------------------------------------------------------------- the command
def _status_line(session: StreamSession, lag_s: float) -> str:
    p = session.last_probability
    return (f"\rstream {session.stream_s:9.1f} s | final {session.final_s:9.1f} s | lag {lag_s:5.1f} s | "
            f"p {p:4.2f} | alarms {len(session.summary.alarms)} | events {len(session.summary.events)} ")


def run_stream(*, name: str | None = None, source_id: str | None = None, checkpoint: str | Path,
               operating_point: str = "10", operating_points: str | Path | None = None,
               out_dir: str | Path = "detections", formats: tuple[str, ...] = ("csv_bi", "tsv"),
               params_dir: str | Path = ".", device: str | None = None, lookahead_s: float | None = None,
               duration_s: float | None = None, replay: str | Path | None = None, speed: float = 1.0,
               resolve_timeout_s: float = 10.0, recording: str | None = None,
               echo: Callable[[str], None] = print, on_warning: Callable[[str], None] | None = None,
               status: bool | None = None, handle_signals: bool = True,
               stop: threading.Event | None = None) -> StreamSummary:
    """What `szflow stream` does (module docstring). Setup problems raise SzflowError before any
    stream is touched, and so does a stream whose electrodes the resolver refuses (StreamError);
    a stream that vanishes or changes channels ends the run with `summary.stopped_by == "error"`
    and `summary.error` set, after writing what was detected. Warnings about the run as a whole
    (a model trained on synthetic data, an uncertified point: `run_warnings`) go to `on_warning`
    once each, before the stream (default: the log), and into the summary."""
    params: Params = load_params(params_dir)
    cfg = params.stream
    lookahead = cfg.lookahead_s if lookahead_s is None else float(lookahead_s)
    if lookahead < 0:
        raise ConfigError(f"--lookahead-s must be >= 0, got {lookahead}")
    if duration_s is not None and duration_s <= 0:
        raise ConfigError(f"--duration-s must be > 0, got {duration_s}")
    if replay is None and not (name or source_id):
        raise ConfigError("give the stream's --name or --source-id (or --replay FILE.edf)")
    if not speed > 0:
        raise ConfigError(f"--speed must be > 0, got {speed}")
    settings = InferenceSettings.from_params(params, device=device)
    precision = resolve_precision(settings.precision, settings.device)
    checkpoint = Path(checkpoint)
    points_path = Path(operating_points) if operating_points else checkpoint.parent / OPERATING_POINTS_NAME
    model, ckpt = load_detector(checkpoint, expected_config=params.model, mamba_impl=params.hardware.mamba_impl,
                                device=settings.device)
    model.eval()
    point = load_operating_point(points_path, operating_point, checkpoint_step=ckpt.step)
    warnings = run_warnings(checkpoint, ckpt.training_data, points_path, operating_point, on_warning)
    min_electrodes = params.preprocess.min_electrodes

    player = None
    expected_samples = None
    if replay is not None:
        tag = f"{Path(replay).stem}-{time.time_ns() % 10**9}"
        name, source_id = f"szflow-replay-{tag}", f"szflow-replay-{tag}"
        player, expected_samples = start_replay(replay, speed, name, source_id, min_electrodes)
        recording = recording or recording_id(replay)
    stop = stop or threading.Event()
    previous_handlers = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    show_status = sys.stderr.isatty() if status is None else status
    started = time.perf_counter()
    source = LslSource(name=name, source_id=source_id, min_electrodes=min_electrodes,
                       resolve_timeout_s=resolve_timeout_s, stall_s=cfg.stall_s, vanish_s=cfg.vanish_s,
                       check_gaps=replay is None)
    summary = StreamSummary()
    session = None
    try:
        description = source.connect()
        montage = source.montage
        rid = recording or f"{description.name}_{time.strftime('%Y%m%dT%H%M%S')}"
        files = EventFiles(out_dir, rid, formats)
        origin = {"stream": description.name, "source_id": description.source_id,
                  "sample_rate_hz": description.sample_rate_hz, **({"edf": str(replay)} if replay is not None else {})}
        try:
            files.write_montage(montage_report(montage, [], 0.0, **origin))
        except OSError as exc:
            raise ConfigError(f"cannot write {files.montage_path}: {exc.strerror or exc}") from None
        markers = MarkerOutlet(f"{description.name}-szflow", f"{description.source_id}-szflow")
        rate = description.sample_rate_hz

        def make_detector() -> OnlineDetector:
            return OnlineDetector(model, params, rate, montage, hop_s=cfg.hop_s, lookahead_s=lookahead,
                                  stats_window_s=cfg.stats_window_s, device=settings.device, precision=precision)

        def on_alarm(alarm: Alarm) -> None:
            if alarm.withdrawn:
                echo(f"alarm withdrawn: the event from {alarm.onset_s:.2f} s ended at {alarm.withdrawn_stop_s:.2f} s, "
                     f"shorter than the operating point's minimum duration (stream time {alarm.at_s:.2f} s)")
            else:
                echo(f"ALARM seizure onset at {alarm.onset_s:.2f} s (raised at stream time {alarm.at_s:.2f} s)")

        def on_event(event: ClosedEvent) -> None:
            echo(f"event {event.start_s:.2f}-{event.stop_s:.2f} s written to {', '.join(map(str, files.paths))}")

        session = StreamSession(make_detector, point, rate, files=files, markers=markers, on_alarm=on_alarm,
                                on_event=on_event, alarm_at=cfg.alarm_at)
        summary = session.summary
        summary.stream, summary.montage = description.name, montage
        summary.warnings = list(warnings)
        echo(f"stream {description.name!r}: {electrodes_line(montage)}; montage in {files.montage_path}")
        echo(f"streaming from {description.name!r} ({len(description.labels)} channels at {rate:g} Hz); "
             f"lookahead {lookahead:g} s, hop {cfg.hop_s:g} s, operating point {operating_point} FA/24h")
        limit = duration_s if duration_s is not None else math.inf
        received = 0
        next_status = 0.0
        while not stop.is_set():
            item = source.read(timeout_s=0.2)
            if isinstance(item, Stalled):
                echo(f"stream stalled: no samples for {item.silent_s:.0f} s")
            elif isinstance(item, Gap):
                echo(f"gap: {item.missing_s:.2f} s of samples missing at stream time {session.stream_s:.2f} s; "
                     "state restarted")
                session.gap(item.missing_s)
            if isinstance(item, Samples) and item.resumed_after_s is not None:
                echo(f"stream resumed after {item.resumed_after_s:.0f} s")
            if isinstance(item, Samples | Gap):
                data = item.data
                room = limit - session.stream_s
                if room * rate < data.shape[1]:
                    data = data[:, :max(0, round(room * rate))]
                session.feed(data)
                received += item.data.shape[1]
                if player is not None:
                    player.consumed = received
                if session.stream_s >= limit:
                    summary.stopped_by = "duration"
                    break
                if expected_samples is not None and received >= expected_samples:
                    summary.stopped_by = "end"
                    player.delivered.set()
                    break
            elif item is None and player is not None and not player.running:
                # The player pushed its last chunk and closed its outlet: the replay is over.
                summary.stopped_by = "end"
                break
            if show_status and time.monotonic() >= next_status:
                lag = session.stream_s - session.final_s
                sys.stderr.write(_status_line(session, lag))
                sys.stderr.flush()
                next_status = time.monotonic() + STATUS_EVERY_S
        if expected_samples is not None and received < expected_samples:
            echo(f"replay: {received} of {expected_samples} samples received")
        if stop.is_set() and not summary.stopped_by:
            summary.stopped_by = "interrupt"
    except StreamError as exc:
        if session is None:
            raise
        summary.stopped_by, summary.error = "error", str(exc)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        source.close()
        if player is not None:
            player.delivered.set()
            if player.running:
                player.stop()
        if show_status:
            sys.stderr.write("\n")
    summary = session.close()
    try:
        files.write_montage(montage_report(montage, summary.gaps, summary.stream_s, **origin))
    except OSError as exc:  # the events are written; a sidecar that cannot be is reported, not fatal
        log.warning("cannot write %s: %s", files.montage_path, exc)
    if session.markers is not None:
        session.markers.close()
    summary.wall_s = time.perf_counter() - started
    log.info("stream ended (%s): %.1f s of EEG in %.1f s", summary.stopped_by, summary.stream_s, summary.wall_s)
    return summary


def format_stream_summary(summary: StreamSummary) -> str:
    line = (f"{summary.stream_s:.1f} s of EEG in {summary.wall_s:.1f} s ({summary.realtime_factor:.1f}x real time): "
            f"{len(summary.alarms)} alarm{'s' if len(summary.alarms) != 1 else ''} "
            f"({len(summary.withdrawn)} withdrawn), {len(summary.events)} "
            f"event{'s' if len(summary.events) != 1 else ''}, {len(summary.gaps)} gap"
            f"{'s' if len(summary.gaps) != 1 else ''}; stopped by {summary.stopped_by}")
    if summary.outputs:
        line += "; events in " + ", ".join(summary.outputs)
    return line
