"""Online events from final probability frames, with `szflow.postprocess`'s own definitions.

Offline, `probs_to_events` smooths a whole track (centred moving average), finds threshold runs
(with hysteresis), turns them into seconds, merges runs closer than `merge_gap_s` and drops events
shorter than `min_duration_s`. Online the same functions run on the frames whose smoothed value is
final (half a smoothing window behind the newest frame; at the stream's end the edge averaging of
the offline function), so, given the same probabilities, the events are the offline events:
  - an ALARM, by `alarm_at`: "onset" the moment an event opens (its first final smoothed frame above
    the threshold), so the alarm comes as early as the probabilities allow; it is WITHDRAWN if the
    event closes shorter than `min_duration_s` (the offline post-processing drops it too), so
    every kept event has had its alarm, and alarms that end withdrawn are the price of the early
    warning. "confirmed": only when the open event is certain to be kept (its runs, merged so far,
    reach `min_duration_s`): never withdrawn, `min_duration_s` later;
  - the EVENT when it is closed: its last run has ended and `merge_gap_s` has passed without a new
    one (or the stream ended).
Memory: the frames since the start of the open event (or the last half smoothing window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from szflow.postprocess import (
    PostprocessSettings,
    runs_to_events,
    smooth_probabilities,
    smoothing_window_frames,
    threshold_runs,
)

ALARM_AT = ("onset", "confirmed")


@dataclass(frozen=True)
class Alarm:
    onset_s: float  # stream time of the event's start
    at_s: float  # stream time of the newest frame when the alarm was raised (or withdrawn)
    # Set when this withdraws the alarm raised at `onset_s`: the event closed at `withdrawn_stop_s`,
    # shorter than min_duration_s, so it is not an event.
    withdrawn_stop_s: float | None = None

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_stop_s is not None


@dataclass(frozen=True)
class ClosedEvent:
    start_s: float
    stop_s: float


class OnlineEvents:
    """Feed final probability frames (`add`), then `finish`; both return (alarms, closed events)."""

    def __init__(self, point: Mapping[str, Any], frame_rate_hz: float, time_offset_s: float = 0.0,
                 alarm_at: str = "onset"):
        if alarm_at not in ALARM_AT:
            raise ValueError(f"alarm_at must be one of {', '.join(ALARM_AT)}, not {alarm_at!r}")
        self.alarm_at = alarm_at
        self.settings = PostprocessSettings.from_any(point)
        self.rate = float(frame_rate_hz)
        self.offset = float(time_offset_s)  # stream time of frame 0 (a segment after a gap starts later)
        self.half = smoothing_window_frames(self.settings.smoothing_s, self.rate) // 2
        self.probabilities = np.zeros(0, np.float64)
        self.base = 0  # absolute frame of probabilities[0]
        self.trusted = 0  # first absolute frame whose smoothed value does not depend on trimmed frames
        self.n_frames = 0
        self.alarmed_start: float | None = None  # start (segment seconds) of the open event already alarmed

    def _scan(self, final: bool, duration_s: float | None = None) -> tuple[list[Alarm], list[ClosedEvent]]:
        final_stop = self.n_frames if final else self.n_frames - self.half
        lo = self.trusted - self.base
        hi = final_stop - self.base
        if hi <= lo:
            return [], []
        smoothed = smooth_probabilities(self.probabilities, self.rate, self.settings.smoothing_s)[lo:hi]
        starts, stops = threshold_runs(smoothed, self.settings.threshold, self.settings.hysteresis_low)
        starts, stops = starts + self.trusted, stops + self.trusted
        duration = math.inf if not final else self.n_frames / self.rate if duration_s is None else duration_s
        rows = np.zeros(starts.size, np.int64)
        rate, span = np.array([self.rate]), np.array([duration])
        # Merged groups, before the minimum duration: whether each is closed, and how long it is.
        _, group_start, group_stop = runs_to_events(rows, starts, stops, rate, span, self.settings.merge_gap_s, 0.0)
        final_s = final_stop / self.rate
        alarms: list[Alarm] = []
        closed: list[ClosedEvent] = []
        open_start_frame: int | None = None
        for i, (start, stop) in enumerate(zip(group_start, group_stop, strict=True)):
            is_last = i == group_start.size - 1
            run_open = is_last and stops[-1] >= final_stop and not final
            is_closed = final or not is_last or (not run_open and final_s - stop >= self.settings.merge_gap_s)
            long_enough = stop - start >= self.settings.min_duration_s
            # A run already over and too short when first seen raises nothing (no alarm to withdraw).
            early = self.alarm_at == "onset" and not is_closed
            if (long_enough or early) and self.alarmed_start != start:
                alarms.append(Alarm(self.offset + float(start), self.offset + final_s))
                self.alarmed_start = float(start)
            if is_closed:
                if long_enough:
                    closed.append(ClosedEvent(self.offset + float(start), self.offset + float(stop)))
                elif self.alarmed_start == start:
                    alarms.append(Alarm(self.offset + float(start), self.offset + final_s,
                                        withdrawn_stop_s=self.offset + float(stop)))
                self.alarmed_start = None
            else:
                open_start_frame = round(start * self.rate)
        # Drop what no later scan needs: everything before the open event, or before the end of
        # the final frames (kept: half a smoothing window before them, for their smoothed values).
        self.trusted = open_start_frame if open_start_frame is not None else final_stop
        keep_from = max(self.base, self.trusted - self.half)
        self.probabilities = self.probabilities[keep_from - self.base:]
        self.base = keep_from
        return alarms, closed

    def add(self, first_frame: int, probabilities: np.ndarray) -> tuple[list[Alarm], list[ClosedEvent]]:
        if first_frame != self.n_frames:
            raise ValueError(f"frames must arrive in order: expected frame {self.n_frames}, got {first_frame}")
        self.probabilities = np.concatenate((self.probabilities, np.asarray(probabilities, np.float64)))
        self.n_frames += len(probabilities)
        return self._scan(final=False)

    def finish(self, duration_s: float | None = None) -> tuple[list[Alarm], list[ClosedEvent]]:
        """The stream (or segment) ended: close the open event; events are clipped to `duration_s`."""
        return self._scan(final=True, duration_s=None if duration_s is None else float(duration_s))
