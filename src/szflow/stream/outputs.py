"""Where a stream's alarms and events go: event files on disk and an LSL marker outlet.

Event files are `szflow detect`'s (`write_events`: TUSZ `.csv_bi`, SzCORE `_events.tsv`). Each
closed event rewrites the whole file atomically with every event so far and the stream time as
the recording's duration, so a reader (or a crash) only ever sees a complete file that ends after
the last event. Markers are JSON strings on an irregular-rate string stream named
`<stream name>-szflow` (type `Markers`), so bedside displays and recorders (LabRecorder) get them:
  {"type": "alarm", "onset_s": 123.25, "at_s": 131.0}            when an event opens (`stream.alarm_at`)
  {"type": "alarm_withdrawn", "onset_s": 123.25, "stop_s": 130.5, "at_s": 141.0}
                                                                 when it ended too short to be an event
  {"type": "event", "start_s": 123.25, "stop_s": 171.5}          when it closes
Times are seconds of stream time (since the first sample received). Beside the event files, the
montage sidecar `<recording id>.montage.json` of `szflow detect` (the same keys): the electrodes
read directly, reconstructed from derivations or missing, the signals read, and the stream's
continuous segments and gaps; written at connect and again when the stream ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from szflow.data.electrodes import ElectrodeMontage
from szflow.detect import FORMATS, MONTAGE_SUFFIX, output_name, write_events
from szflow.io_utils import atomic_write_json
from szflow.stream.postprocess_online import Alarm, ClosedEvent

MARKER_STREAM_TYPE = "Markers"


class EventFiles:
    """The event files of one stream session (one per format in `formats`)."""

    def __init__(self, out_dir: str | Path, recording_id: str, formats: tuple[str, ...]):
        for fmt in formats:
            output_name(recording_id, fmt)  # ConfigError for an unknown format
        self.out_dir = Path(out_dir)
        self.recording_id = recording_id
        self.formats = tuple(formats)
        self.events: list[tuple[float, float]] = []

    @property
    def paths(self) -> list[Path]:
        return [self.out_dir / output_name(self.recording_id, fmt) for fmt in self.formats]

    def write(self, duration_s: float) -> None:
        """Rewrite every file atomically with the events so far, the recording `duration_s` long."""
        for fmt, path in zip(self.formats, self.paths, strict=True):
            write_events(path, self.recording_id, self.events, max(duration_s, 0.0), fmt)

    def append(self, event: ClosedEvent, duration_s: float) -> None:
        self.events.append((event.start_s, event.stop_s))
        self.write(max(duration_s, event.stop_s))

    @property
    def montage_path(self) -> Path:
        return self.out_dir / (self.recording_id + MONTAGE_SUFFIX)

    def write_montage(self, report: dict) -> None:
        """Write the montage sidecar (`montage_report`) atomically."""
        atomic_write_json(self.montage_path, report)


def montage_report(montage: ElectrodeMontage, gaps: list[tuple[float, float]], duration_s: float,
                   **source) -> dict:
    """The montage sidecar of a stream, with the keys `szflow detect` writes for a file: `source`
    (the stream's name, ...), the electrodes (`ElectrodeMontage.report`), the continuous segments
    and the gaps ([start, stop] in stream time, from (stream time, seconds missing) pairs), the
    duration so far."""
    segments, start = [], 0.0
    for at, missing in gaps:
        if at > start:
            segments.append([start, at])
        start = at + missing
    if duration_s > start:
        segments.append([start, duration_s])
    return {**source, **montage.report(), "segments": segments, "gaps": [[at, at + missing] for at, missing in gaps],
            "skipped_segments": [], "duration_s": duration_s}


def alarm_marker(alarm: Alarm) -> str:
    if alarm.withdrawn:
        return json.dumps({"type": "alarm_withdrawn", "onset_s": round(alarm.onset_s, 3),
                           "stop_s": round(alarm.withdrawn_stop_s, 3), "at_s": round(alarm.at_s, 3)})
    return json.dumps({"type": "alarm", "onset_s": round(alarm.onset_s, 3), "at_s": round(alarm.at_s, 3)})


def event_marker(event: ClosedEvent) -> str:
    return json.dumps({"type": "event", "start_s": round(event.start_s, 3), "stop_s": round(event.stop_s, 3)})


class MarkerOutlet:
    """An LSL string outlet that carries the alarm and event markers."""

    def __init__(self, name: str, source_id: str):
        from mne_lsl.lsl import StreamInfo, StreamOutlet  # liblsl: only when streaming

        info = StreamInfo(name, MARKER_STREAM_TYPE, 1, 0.0, "string", source_id)
        self.name = name
        self.outlet = StreamOutlet(info)

    def push(self, marker: str) -> None:
        self.outlet.push_sample([marker])

    def close(self, linger_s: float = 0.5) -> None:
        """Close the outlet; pushing is asynchronous, so wait `linger_s` first for the last
        markers to reach connected inlets."""
        if self.outlet is not None and self.outlet.has_consumers:
            time.sleep(linger_s)
        self.outlet = None


__all__ = ["FORMATS", "EventFiles", "MarkerOutlet", "alarm_marker", "event_marker", "montage_report"]
