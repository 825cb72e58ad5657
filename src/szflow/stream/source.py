"""An LSL EEG stream as a sequence of sample blocks and the things live streams do.

`LslSource` resolves a stream by name or source id, opens an inlet (mne-lsl, which bundles
liblsl), resolves its channel labels with the electrode resolver of `szflow detect`
(`stream_montage`: referential or bipolar, any label convention, electrodes missing down to
`preprocess.min_electrodes`), and `read()`s one of:
  - `Samples`: the signals the montage reads (microvolts) of the samples that arrived, however late
    or bursty;
  - `Gap`: the samples' time stamps jumped forward (samples were lost): the caller restarts its
    state at the new time, never filling in data;
  - `Stalled`: no samples for `stall_s` (the next `Samples` says how long the silence was);
and raises `StreamVanished` when no sample came for `vanish_s` and the stream cannot be found
again, `ChannelSetChanged` when the stream reappears with other channels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from szflow.data.electrodes import ElectrodeMontage, resolve_montage
from szflow.errors import SzflowError

log = logging.getLogger("szflow.stream")

# Samples pulled per read at most (a burst is read over several calls).
MAX_PULL = 4096
# Slack on the sample spacing before a jump of the time stamps counts as lost samples (seconds of EEG).
GAP_TOLERANCE_S = 0.25
# Factors from a stream's channel unit to microvolts (LSL's XDF convention names them in words).
UNIT_TO_MICROVOLTS = {"v": 1e6, "volt": 1e6, "volts": 1e6, "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3,
                      "uv": 1.0, "µv": 1.0, "microvolt": 1.0, "microvolts": 1.0}


class StreamError(SzflowError):
    """A live stream problem the run cannot go on from."""


class StreamNotFound(StreamError):
    pass


class StreamVanished(StreamError):
    pass


class ChannelSetChanged(StreamError):
    pass


@dataclass(frozen=True)
class Samples:
    data: np.ndarray  # (len(montage.sources), n) float32 microvolts, the montage's signals in its order
    timestamps: np.ndarray  # (n,) LSL time stamps
    resumed_after_s: float | None = None  # set when these samples end a stall: how long it was


@dataclass(frozen=True)
class Gap:
    missing_s: float  # seconds of EEG the time stamps skipped
    data: np.ndarray  # the samples after the gap (as Samples.data)
    timestamps: np.ndarray


@dataclass(frozen=True)
class Stalled:
    silent_s: float


@dataclass(frozen=True)
class StreamDescription:
    name: str
    source_id: str
    sample_rate_hz: float
    labels: tuple[str, ...]
    units: tuple[str, ...]


def stream_montage(labels: list[str] | tuple[str, ...], min_electrodes: int, stream: str = "") -> ElectrodeMontage:
    """The montage of a stream's channel `labels`: `szflow.data.electrodes.resolve_montage`, the
    resolver `szflow detect` applies to an EDF's labels, so referential and bipolar streams, every
    label convention and missing electrodes are handled alike. StreamError with the resolver's
    refusal (naming the missing electrodes) when fewer than `min_electrodes` are present."""
    montage = resolve_montage([str(label) for label in labels])
    refusal = montage.refusal(min_electrodes)
    if refusal is not None:
        raise StreamError(f"stream {stream!r}: {refusal}" if stream else refusal)
    return montage


def microvolt_factors(units: tuple[str, ...], indices: tuple[int, ...] | list[int]) -> np.ndarray:
    """Per-signal factor to microvolts of the channels `indices`; an unnamed or unknown unit is taken
    as microvolts."""
    factors = [UNIT_TO_MICROVOLTS.get(str(units[i] or "").strip().lower(), 1.0) if i < len(units) else 1.0
               for i in indices]
    return np.asarray(factors, np.float32)


class LslSource:
    """One LSL EEG stream (see the module docstring): `connect`, `read` until done, `close`."""

    def __init__(self, *, min_electrodes: int, name: str | None = None, source_id: str | None = None,
                 resolve_timeout_s: float = 10.0, stall_s: float = 5.0, vanish_s: float = 30.0,
                 check_gaps: bool = True):
        if not name and not source_id:
            raise StreamError("give the stream's --name or --source-id")
        self.name, self.source_id = name, source_id
        self.min_electrodes = int(min_electrodes)
        self.resolve_timeout_s = resolve_timeout_s
        self.stall_s, self.vanish_s = stall_s, vanish_s
        self.check_gaps = check_gaps
        self.inlet = None  # mne_lsl.lsl.StreamInlet once connected
        self.description: StreamDescription | None = None
        self.montage: ElectrodeMontage | None = None  # set by connect
        self.indices: list[int] = []  # the channels the montage reads (its sources), in its order
        self.factors = np.ones(0, np.float32)
        self.last_timestamp: float | None = None
        self.last_data_wall = time.monotonic()
        self.stalled = False
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # the rest of a block cut at a gap

    # ------------------------------------------------------------------ connection
    def _resolve(self, timeout: float):
        from mne_lsl.lsl import resolve_streams  # mne-lsl loads liblsl and mne: only when a stream is used

        found = resolve_streams(timeout=timeout, name=self.name, source_id=self.source_id)
        return found[0] if found else None

    @staticmethod
    def _describe(inlet) -> StreamDescription:
        info = inlet.get_sinfo()
        labels = tuple(info.get_channel_names() or ())
        units = tuple(info.get_channel_units() or ())
        return StreamDescription(name=info.name, source_id=info.source_id, sample_rate_hz=float(info.sfreq),
                                 labels=labels, units=units)

    def _open(self, sinfo) -> StreamDescription | None:
        """Open an inlet on `sinfo` and read its full description (channel labels, units); None
        when the stream went away meanwhile."""
        from mne_lsl.lsl import StreamInlet

        inlet = StreamInlet(sinfo, max_buffered=360, recover=False)
        try:
            inlet.open_stream(timeout=self.resolve_timeout_s)
            description = self._describe(inlet)
        except (RuntimeError, TimeoutError) as exc:  # LostError: the outlet closed meanwhile
            log.debug("opening the inlet failed: %s", exc)
            return None
        self.inlet = inlet
        return description

    def connect(self) -> StreamDescription:
        sinfo = self._resolve(self.resolve_timeout_s)
        if sinfo is None:
            which = f"name {self.name!r}" if self.name else f"source id {self.source_id!r}"
            raise StreamNotFound(f"no LSL stream with {which} found within {self.resolve_timeout_s:g} s")
        description = self._open(sinfo)
        if description is None:
            raise StreamNotFound(f"stream {sinfo.name!r} closed while connecting")
        if description.sample_rate_hz <= 0:
            raise StreamError(f"stream {description.name!r} has no regular sample rate (irregular streams "
                              "cannot be filtered)")
        try:
            self.montage = stream_montage(description.labels, self.min_electrodes, description.name)
        except StreamError:
            self.close()
            raise
        self.indices = list(self.montage.sources)
        self.factors = microvolt_factors(description.units, self.indices)
        self.description = description
        self.last_data_wall = time.monotonic()
        log.info("connected to %s (%s): %d channels at %g Hz", description.name, description.source_id,
                 len(description.labels), description.sample_rate_hz)
        return description

    def close(self) -> None:
        if self.inlet is not None:
            try:
                self.inlet.close_stream()
            except Exception:  # closing a broken inlet must not hide why the run stopped
                log.debug("closing the inlet failed", exc_info=True)
            self.inlet = None

    # ------------------------------------------------------------------ reading
    def _reconnect(self) -> None:
        """The stream went silent for vanish_s: find it again (same channels) or give up."""
        silent = time.monotonic() - self.last_data_wall
        sinfo = self._resolve(min(2.0, self.vanish_s))
        if sinfo is None:
            raise StreamVanished(f"stream {self.description.name!r} sent nothing for {silent:.0f} s and is gone")
        self.close()
        description = self._open(sinfo)
        if description is None:
            raise StreamVanished(f"stream {self.description.name!r} sent nothing for {silent:.0f} s and is gone")
        old = self.description
        if (description.labels, description.sample_rate_hz) != (old.labels, old.sample_rate_hz):
            self.close()
            raise ChannelSetChanged(
                f"stream {old.name!r} came back with other channels or rate: {len(description.labels)} channels "
                f"at {description.sample_rate_hz:g} Hz ({', '.join(map(str, description.labels))}) instead of "
                f"{len(old.labels)} at {old.sample_rate_hz:g} Hz")
        log.warning("stream %s reconnected after %.0f s", old.name, silent)
        self.last_data_wall = time.monotonic()

    def read(self, timeout_s: float = 0.5):
        """The next thing that happened: Samples, Gap, Stalled, or None (nothing within timeout_s)."""
        resumed_after = None
        if self._pending is not None:
            (block, timestamps), self._pending = self._pending, None
        else:
            try:
                data, timestamps = self.inlet.pull_chunk(timeout=timeout_s, max_samples=MAX_PULL)
            except RuntimeError as exc:  # mne-lsl's LostError: the outlet is gone (the inlet does not recover)
                log.debug("pull_chunk: %s", exc)
                time.sleep(timeout_s)
                data, timestamps = None, ()
            now = time.monotonic()
            if len(timestamps) == 0:
                silent = now - self.last_data_wall
                if silent >= self.vanish_s:
                    self._reconnect()
                    return None
                if silent >= self.stall_s and not self.stalled:
                    self.stalled = True
                    return Stalled(silent)
                return None
            data = np.asarray(data, np.float32)
            if data.ndim != 2 or data.shape[1] != len(self.description.labels):
                raise ChannelSetChanged(f"stream {self.description.name!r} sent {data.shape} samples; it has "
                                        f"{len(self.description.labels)} channels")
            block = np.ascontiguousarray(data[:, self.indices].T) * self.factors[:, None]
            timestamps = np.asarray(timestamps, np.float64)
            if self.stalled:
                resumed_after = now - self.last_data_wall
            self.last_data_wall = now
            self.stalled = False
        missing = 0.0
        if self.check_gaps:
            # A jump of the time stamps before sample k of the block (k = 0: since the last block)
            # means lost samples: the block is cut there and the rest is the next read's.
            step = 1.0 / self.description.sample_rate_hz
            previous = timestamps[:1] - step if self.last_timestamp is None else [self.last_timestamp]
            jumps = np.diff(np.concatenate((previous, timestamps))) - step
            late = np.flatnonzero(jumps > GAP_TOLERANCE_S)
            if late.size and late[0] == 0:
                missing = float(jumps[0])
                late = late[1:]
            if late.size:
                cut = int(late[0])
                self._pending = (block[:, cut:], timestamps[cut:])
                block, timestamps = block[:, :cut], timestamps[:cut]
        self.last_timestamp = float(timestamps[-1])
        if missing:
            return Gap(missing, block, timestamps)
        return Samples(block, timestamps, resumed_after)
