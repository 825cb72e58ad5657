"""The signal chain of `szflow.signal.chain`, computed block by block as samples arrive.

Offline, a recording is resampled (polyphase), common-average referenced, filtered forward and
backward (`sosfiltfilt` semantics) and normalised with statistics of the whole recording. Online:
  - resampling of the stream's signals (those the electrode montage reads, `szflow.data.electrodes`):
    `resample_poly` over each new stretch plus the FIR's support on both sides, keeping only
    outputs whose support lies inside real samples: identical to the offline outputs (the first
    ones use the same 'edge' padding at the stream start); it holds back about 10 input samples
    (40 ms at 250 Hz) until their right support has arrived;
  - the montage and the common average reference over the present electrodes
    (`szflow.signal.montage.electrode_potentials`, as offline): per sample, so nothing changes;
    rows of missing electrodes are zero throughout (the filter and the normalisation keep them so);
  - forward filter pass: a recursive filter is causal, so it runs incrementally with its state,
    started at the stream start exactly as `sos_filtfilt` starts it (odd extension, `sosfilt_zi`):
    the forward output equals the offline one;
  - backward filter pass: needs the future. For a window ending at sample T it starts at T with
    `sos_filtfilt`'s odd extension of the last samples, as if the recording ended at T. The
    difference from offline is the backward pass's edge transient, which decays within a few
    seconds (the 0.5 Hz high-pass poles): frames `lookahead` behind T see almost none of it;
  - normalisation: `channel_stats` (same method, same block sampling) over the last
    `stats_window_s` of filtered signal that is at least `lookahead` old, kept as a ring of 1 s
    blocks; offline uses 64 blocks spread over the whole recording. Early in a stream the window
    holds only what has arrived (the first frames are normalised with a few seconds of statistics);
    in a stream longer than the window the statistics follow slow changes of amplitude that the
    offline statistics average over.
Memory is bounded: the raw and forward-filtered signal of one window, the statistics ring.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly, sosfilt, sosfilt_zi

from szflow.config import PreprocessConfig
from szflow.data.electrodes import ElectrodeMontage
from szflow.signal.chain import N_CHANNELS, chain_filter, quantise
from szflow.signal.iir import odd_padlen
from szflow.signal.montage import electrode_potentials
from szflow.signal.normalise import STATS_BLOCK_SAMPLES, apply_stats, channel_stats
from szflow.signal.resample import rational_ratio, resampled_length


class OnlineResampler:
    """Polyphase resampling of an unbounded (channels, n) stream, output equal to `resample_poly`
    of the whole stream with 'edge' padding at its start."""

    def __init__(self, from_hz: float, to_hz: float, channels: int):
        self.channels = int(channels)
        self.up, self.down = rational_ratio(float(from_hz), float(to_hz))
        # scipy's default FIR has 2 * half_len + 1 taps at the up-sampled rate, half_len = 10 * max(up, down).
        self.support = -(-10 * max(self.up, self.down) // self.up) + 2  # input samples on each side
        self.raw = np.zeros((self.channels, 0), np.float32)
        self.raw_start = 0  # absolute input index of raw[:, 0]
        self.n_in = 0
        self.n_out = 0  # outputs produced so far

    def push(self, block: np.ndarray, final: bool = False) -> np.ndarray:
        """Append input (channels, n); return the outputs that are now exact (all at `final`)."""
        if self.up == self.down:
            self.n_in += block.shape[1]
            self.n_out += block.shape[1]
            return block
        self.raw = np.concatenate((self.raw, block), axis=1) if self.raw.size else block
        self.n_in += block.shape[1]
        if final:
            stop = resampled_length(self.n_in, self.up, self.down)
        else:
            # Output k needs input up to k * down / up + support.
            stop = max(self.n_out, ((self.n_in - self.support) * self.up) // self.down)
        if stop <= self.n_out:
            return np.zeros((self.channels, 0), np.float32)
        # The segment starts on an input sample that lands exactly on an output sample (a multiple
        # of `down`), `support` inputs before the first output wanted (or at the stream start).
        first_in = max(0, (self.n_out * self.down) // self.up - self.support) // self.down * self.down
        first_in = max(first_in, self.raw_start)  # raw_start is a multiple of `down` too
        segment = self.raw[:, first_in - self.raw_start:]
        out = resample_poly(segment, self.up, self.down, axis=-1, padtype="edge").astype(np.float32, copy=False)
        out_first = first_in * self.up // self.down
        result = np.ascontiguousarray(out[:, self.n_out - out_first: stop - out_first])
        self.n_out = stop
        # Keep the input the next call's segment will start from.
        keep_from = max(0, (self.n_out * self.down) // self.up - self.support) // self.down * self.down
        if keep_from > self.raw_start:
            self.raw = self.raw[:, keep_from - self.raw_start:].copy()
            self.raw_start = keep_from
        return result


class OnlinePreprocessor:
    """Raw signal blocks in, normalised float16 windows out (see the module docstring).

    `push(block)` takes (len(montage.sources), n) float32 in microvolts at `input_rate_hz`, the
    signals `montage` reads in its order; `window(first, stop)` returns the network input (N_CHANNELS
    electrodes) for output samples [first, stop). Windows must be asked in order of `stop` (each
    hop's window ends later than the previous one).
    """

    def __init__(self, cfg: PreprocessConfig, input_rate_hz: float, montage: ElectrodeMontage, *,
                 window_samples: int, lookahead_samples: int, stats_window_s: float):
        self.cfg = cfg
        self.montage = montage
        self.rate = float(cfg.sample_rate_hz)
        self.sos = chain_filter(cfg).astype(np.float64)
        self.zi_unit = sosfilt_zi(self.sos)  # (sections, 2)
        self.padlen = odd_padlen(self.sos)
        self.resampler = OnlineResampler(input_rate_hz, self.rate, len(montage.sources))
        self.window_samples = int(window_samples)
        self.lookahead = int(lookahead_samples)
        # The electrodes' common-average-referenced signal not yet filtered forward, plus the last
        # padlen + 1 samples before it (the odd extension at a window's end reads them).
        self.x = np.zeros((N_CHANNELS, 0), np.float32)
        self.x_start = 0
        self.n_x = 0
        # Forward-filtered signal: the last window_samples before `n_forward`.
        self.forward = np.zeros((N_CHANNELS, 0), np.float32)
        self.n_forward = 0
        self.state: np.ndarray | None = None  # (sections, channels, 2) forward filter state
        # Statistics ring of 1 s blocks of filtered signal at least `lookahead` old.
        blocks = max(1, math.ceil(stats_window_s * self.rate / STATS_BLOCK_SAMPLES))
        self.ring = np.zeros((N_CHANNELS, blocks * STATS_BLOCK_SAMPLES), np.float32)
        self.ring_blocks = blocks
        self.blocks_seen = 0  # 1 s blocks [k * B, (k + 1) * B) already in the ring, k < blocks_seen
        self.final = False

    @property
    def n_available(self) -> int:
        """Resampled, referenced samples received so far (what a window may end at)."""
        return self.n_x

    @property
    def n_sources(self) -> int:
        """Signals per raw block (those the montage reads)."""
        return self.resampler.channels

    def push(self, block: np.ndarray, final: bool = False) -> None:
        """Append raw samples (n_sources, n) of the montage's signals; `final` marks the end of the stream."""
        block = np.asarray(block, np.float32)
        if block.ndim != 2 or block.shape[0] != self.n_sources:
            raise ValueError(f"expected ({self.n_sources}, n) samples of the montage's signals, got {block.shape}")
        out = self.resampler.push(block, final=final)
        self.final = self.final or final
        if out.shape[1]:
            # Own copy: the montage of 19 referential electrodes is the block itself, and the
            # reference is subtracted in place.
            out = electrode_potentials(np.array(out, np.float32), self.montage)
            self.x = np.concatenate((self.x, out), axis=1) if self.x.size else out
            self.n_x += out.shape[1]

    def _x(self, first: int, stop: int) -> np.ndarray:
        return self.x[:, first - self.x_start: stop - self.x_start]

    def _advance_forward(self, stop: int) -> None:
        """Run the forward pass over the referenced signal up to sample `stop`."""
        if stop <= self.n_forward:
            return
        if self.state is None:
            # sos_filtfilt's start: the odd extension 2 x[0] - x[padlen..1], filtered from
            # zi * its first value; its output is discarded.
            x0 = self._x(0, self.padlen + 1)
            extension = 2 * x0[:, :1] - x0[:, self.padlen:0:-1]
            self.state = self.zi_unit[:, None, :] * extension[None, :, 0:1]
            _, self.state = sosfilt(self.sos, extension, axis=-1, zi=self.state)
        y, self.state = sosfilt(self.sos, self._x(self.n_forward, stop), axis=-1, zi=self.state)
        self.forward = np.concatenate((self.forward, y.astype(np.float32)), axis=1)[:, -self.window_samples:]
        self.n_forward = stop
        # Keep the referenced samples the next odd extension needs.
        keep_from = max(self.x_start, stop - self.padlen - 1)
        self.x = self.x[:, keep_from - self.x_start:].copy()
        self.x_start = keep_from

    def filtered(self, first: int, stop: int) -> np.ndarray:
        """Zero-phase filtered samples [first, stop), the backward pass started at `stop` (float32)."""
        if stop < self.padlen + 1 or stop > self.n_x:
            raise ValueError(f"cannot filter up to sample {stop} ({self.n_x} received, need > {self.padlen})")
        if stop < self.n_forward or stop - first > self.window_samples:
            raise ValueError(f"window [{first}, {stop}) is no longer buffered")
        self._advance_forward(stop)
        # The end as sos_filtfilt sees a recording's end: odd extension 2 x[T-1] - x[T-2..T-1-padlen].
        tail = self._x(stop - self.padlen - 1, stop)
        extension = 2 * tail[:, -1:] - tail[:, -2::-1]
        y_ext, _ = sosfilt(self.sos, extension, axis=-1, zi=self.state)
        forward = self.forward[:, first - (self.n_forward - self.forward.shape[1]):]
        backward_input = np.concatenate((forward, y_ext.astype(np.float32)), axis=1)[:, ::-1]
        zi = self.zi_unit[:, None, :] * backward_input[None, :, 0:1]
        y, _ = sosfilt(self.sos, backward_input, axis=-1, zi=zi)
        return np.ascontiguousarray(y[:, ::-1][:, :stop - first], dtype=np.float32)

    def _update_stats(self, block: np.ndarray, first: int, stop: int) -> None:
        """Put the 1 s blocks of `block` (samples [first, stop)) that are now old enough in the ring."""
        settled = stop if self.final else stop - self.lookahead
        size = STATS_BLOCK_SAMPLES
        while (self.blocks_seen + 1) * size <= settled:
            start = self.blocks_seen * size
            if start >= first:
                slot = self.blocks_seen % self.ring_blocks
                self.ring[:, slot * size:(slot + 1) * size] = block[:, start - first: start - first + size]
            self.blocks_seen += 1

    def window(self, first: int, stop: int) -> np.ndarray:
        """The network input for samples [first, stop): filtered, normalised with the running
        statistics, clipped and quantised like the cache (float16)."""
        block = self.filtered(first, stop)
        self._update_stats(block, first, stop)
        filled = min(self.blocks_seen, self.ring_blocks) * STATS_BLOCK_SAMPLES
        # Before the first settled second: the statistics of the window itself.
        sample = self.ring[:, :filled] if filled else block
        stats = channel_stats(sample, self.cfg.normalisation)
        return quantise(apply_stats(block, stats, self.cfg.clip))
