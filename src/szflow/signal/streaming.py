"""The signal chain of `szflow.signal.chain` over a long EDF, one chunk at a time.

Whole-recording preprocessing holds several float32 copies of the signal (about 70 MB each per
hour); a recording of a day does not fit. `ChunkedSignal` computes the same (channels, n) signal
in two passes:
  pass 1 reads `chunk_s` of EEG at a time (plus `margin_s` on each side, so the zero-phase IIR
         filters and the polyphase resampler settle before the kept part) and keeps only the
         samples `statistics_columns` names (those `channel_stats` would pick from the whole
         filtered recording); `channel_stats` of those gives the whole-recording statistics;
  pass 2 (`ChunkedSource`) recomputes each chunk (one window longer, so every window a reader
         asks for lies inside one chunk), normalises it with those statistics and quantises it.
Differences from the one-piece result: the float32 round-off of the recursive filters depends on
where a segment starts (about 5e-5 of a channel's range; the filters' start-up transients
themselves decay long before the margin ends: e^-60 for the 0.5 Hz pole over 60 s), and so do the
statistics by as much. After float16 quantisation about a fifth of the samples differ, by at most
0.004 in units of the channel's spread (one float16 step at |x| in [4, 8)) and 7e-5 on average.
Memory is one chunk (about 40 MB of float32 per channel-half-hour block) and the statistics sample
(5 MB), whatever the recording's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from szflow.config import PreprocessConfig
from szflow.data.edf import EdfHeader, read_records
from szflow.data.electrodes import ElectrodeMontage
from szflow.errors import InputFileError
from szflow.signal.chain import N_CHANNELS, chain_filter, quantise, reference_and_filter
from szflow.signal.normalise import NormalisationStats, apply_stats, channel_stats, statistics_columns
from szflow.signal.resample import rational_ratio, resample_channels, resampled_length

RawCheck = Callable[[Sequence[np.ndarray]], None]


class ChunkedSignal:
    """The preprocessed (19, n) signal of an EDF's `montage`, computed chunk by chunk.

    `records` ([first, stop) data records; default all) limits it to one continuous segment of an
    EDF+D file.
    """

    def __init__(self, path: Path, header: EdfHeader, montage: ElectrodeMontage, cfg: PreprocessConfig,
                 chunk_s: float, margin_s: float, records: tuple[int, int] | None = None):
        self.path, self.header, self.montage, self.cfg = Path(path), header, montage, cfg
        self.chosen = list(montage.sources)
        self.first_record, stop_record = records if records is not None else (0, header.n_records)
        n_records = stop_record - self.first_record
        self.rate = float(cfg.sample_rate_hz)
        self.sos = chain_filter(cfg)
        self.spr = [header.samples_per_record[i] for i in self.chosen]
        self.rates = [header.sample_rates[i] for i in self.chosen]
        self.ratios = [rational_ratio(float(r), self.rate) for r in self.rates]
        self.n_in = [n_records * s for s in self.spr]
        # resample_channels cuts channels of different rates to the shortest: so does this.
        self.n_out = min(resampled_length(n, up, down) for n, (up, down) in zip(self.n_in, self.ratios, strict=True))
        # A segment must start where every channel's input sample lands exactly on an output sample.
        self.align = math.lcm(*(up for up, _ in self.ratios))
        if self.align > 60 * self.rate:
            # Channels of unrelated rates (e.g. 257 and 263 Hz) share no sample grid a chunk can start on.
            raise InputFileError(path, f"its EEG channels' sample rates {sorted(set(self.rates))} share no "
                                       "common sample grid; resample the file to one rate")
        # Whole seconds (so a multiple of the statistics stride) of at least one second.
        self.chunk = max(1, round(chunk_s)) * round(self.rate)
        self.margin = max(1, math.ceil(margin_s)) * round(self.rate)
        self.stats: NormalisationStats | None = None

    def raw_segment(self, handle, out_first: int, out_stop: int) -> tuple[list[np.ndarray], int]:
        """Raw electrode samples whose resampled output covers [out_first, out_stop) (out_first aligned).

        Returns the signals (each starting at output sample `out_first`) and the number of output
        samples they are resampled to that belong to the segment.
        """
        firsts, stops = [], []
        for n_in, (up, down) in zip(self.n_in, self.ratios, strict=True):
            first = out_first * down // up  # exact: out_first is a multiple of up
            # Enough input past the last output for the polyphase filter (10 * max(up, down) taps
            # at the up-sampled rate on each side), so outputs up to out_stop use real samples.
            pad = -(-10 * max(up, down) // up) + 2
            firsts.append(first)
            stops.append(min(n_in, -(-out_stop * down // up) + pad))
        record_first = min(f // s for f, s in zip(firsts, self.spr, strict=True))
        record_stop = max(-(-t // s) for t, s in zip(stops, self.spr, strict=True))
        # Values that overflow float32 are the caller's check to report (`raw_check`), not numpy's.
        with np.errstate(over="ignore", invalid="ignore"):
            signals = read_records(handle, self.header, self.chosen, self.first_record + record_first,
                                   record_stop - record_first)
        return [sig[f - record_first * s: t - record_first * s]
                for sig, f, t, s in zip(signals, firsts, stops, self.spr, strict=True)], out_stop - out_first

    def filtered(self, handle, first: int, stop: int, raw_check: RawCheck | None = None) -> np.ndarray:
        """Output samples [first, stop) after resampling, re-referencing and filtering (float32)."""
        seg_first = max(0, first - self.margin) // self.align * self.align
        seg_stop = min(self.n_out, stop + self.margin)
        raw, n_keep = self.raw_segment(handle, seg_first, seg_stop)
        if raw_check is not None:
            raw_check(raw)
        block = resample_channels(raw, self.rates, self.rate)
        del raw
        block = np.ascontiguousarray(block[:, :n_keep])
        filtered = reference_and_filter(block, self.montage, self.sos)
        return filtered[:, first - seg_first: stop - seg_first]

    def compute_stats(self, raw_check: RawCheck | None = None, progress: bool = False) -> NormalisationStats:
        """Pass 1: whole-recording normalisation statistics, from the very samples `channel_stats`
        would use. `raw_check` sees every raw segment read (to refuse bad values early)."""
        columns = statistics_columns(self.n_out)
        sample = np.empty((N_CHANNELS, columns.size), np.float32)
        hours = self.n_out / self.rate / 3600
        with open(self.path, "rb") as handle, tqdm(total=hours, desc="preprocess", unit="h", leave=False,
                                                  disable=not progress,
                                                  bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} h") as bar:
            for first in range(0, self.n_out, self.chunk):
                stop = min(first + self.chunk, self.n_out)
                block = self.filtered(handle, first, stop, raw_check)
                inside = (columns >= first) & (columns < stop)
                sample[:, inside] = block[:, columns[inside] - first]
                bar.update((stop - first) / self.rate / 3600)
        # `sample` is short enough that `channel_stats` uses all of it, as it would have used
        # these same columns of the whole recording.
        self.stats = channel_stats(sample, self.cfg.normalisation)
        return self.stats

    def normalised16(self, handle, first: int, stop: int) -> np.ndarray:
        """Pass 2: output samples [first, stop), normalised, clipped and quantised like the cache."""
        if self.stats is None:
            raise RuntimeError("ChunkedSignal.compute_stats must run before normalised16")
        block = np.array(self.filtered(handle, first, stop))
        return quantise(apply_stats(block, self.stats, self.cfg.clip))


class ChunkedSource:
    """A `ChunkedSignal` served as a window source (`szflow.cache.store.SignalSource`).

    Chunk k holds output samples [k * C, (k + 1) * C + W) (C the chunk, W the longest window), so
    every span starting in [k * C, (k + 1) * C) and at most W long lies inside chunk k. Readers
    that go in time order compute each chunk once; a span out of order recomputes its chunk.
    """

    def __init__(self, signal: ChunkedSignal, max_span: int):
        self.signal = signal
        self.max_span = int(max_span)
        self.n_samples = signal.n_out
        self.n_channels = N_CHANNELS
        self._chunk_index = -1
        self._chunk: np.ndarray | None = None
        self._handle = open(signal.path, "rb")  # noqa: SIM115 - closed by close()

    def samples(self, first: int, stop: int) -> np.ndarray:
        """Float16 samples [first, stop) (a view of the current chunk)."""
        if stop - first > self.max_span or not 0 <= first < stop <= self.n_samples:
            raise ValueError(f"span [{first}, {stop}) does not fit the chunks")
        chunk = self.signal.chunk
        k = first // chunk
        if k != self._chunk_index:
            self._chunk = None  # free the old chunk before computing the next
            stop_k = min(k * chunk + chunk + self.max_span, self.n_samples)
            self._chunk = self.signal.normalised16(self._handle, k * chunk, stop_k)
            self._chunk_index = k
        return self._chunk[:, first - k * chunk: stop - k * chunk]

    def close(self) -> None:
        self._handle.close()
        self._chunk = None
