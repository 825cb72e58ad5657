"""An EDF file as a one-recording store of network input, checked and preprocessed like the cache.

`prepare_stores` resolves the electrodes (`szflow.data.electrodes`: read directly, reconstructed
from bipolar derivations, or missing; fewer than `preprocess.min_electrodes` present is refused),
splits an EDF+D file into its continuous segments, refuses inputs detect cannot analyse (sample
rates no EEG system records at, too short, NaN/inf or flat), then runs the preprocess stage's own
chain (`szflow.signal.chain`) over the whole recording, or, when that would not fit in memory, the
same chain chunk by chunk (`szflow.signal.streaming`), and quantises to the cache's float16. The
result is a `szflow.cache.store.RecordingStore` per segment, which `szflow.inference.predict_tracks`
reads as it reads a cache split: for a recording of the eval split the network input is the cache's,
bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from szflow.cache.store import ArraySource, RecordingStore
from szflow.config import Params
from szflow.data.edf import (
    EdfHeader,
    read_edf_header,
    read_eeg_segments,
    read_segments,
    resolve_header,
    segment_id,
)
from szflow.data.electrodes import ElectrodeMontage
from szflow.errors import InputFileError
from szflow.signal.chain import N_CHANNELS, preprocess_recording, quantise
from szflow.signal.streaming import ChunkedSignal, ChunkedSource

# Recordings up to this long are preprocessed in one piece (identical to the preprocess stage),
# unless that would need more than EXACT_MAX_BYTES (high sample rates): see `one_piece_bytes`.
EXACT_MAX_S = 2 * 3600.0
EXACT_MAX_BYTES = 1.2e9
# The shortest recording detect accepts: the network sees 60 s windows, and below 10 s the
# normalisation statistics and the filters' edges dominate what little signal there is.
MIN_DURATION_S = 10.0
# Chunked processing of longer recordings: kept length per chunk and settling margin on each side.
CHUNK_S = 1800.0
MARGIN_S = 60.0
# EEG sample rates detect accepts: beyond these the polyphase resampler's filter (about 20 taps per
# unit of the rate ratio) grows without bound, and no EEG system records there.
MIN_RATE_HZ, MAX_RATE_HZ = 32.0, 20_000.0
# A channel whose samples span fewer than this many digital steps carries no signal.
FLAT_DIGITAL_STEPS = 2.0


def recording_id(path: str | Path) -> str:
    """The recording id eval uses for an EDF: the stem, without BIDS's `_eeg` suffix."""
    return Path(path).stem.removesuffix("_eeg")


def check_header(header: EdfHeader, chosen: Sequence[int]) -> None:
    """InputFileError for a recording detect cannot analyse, from its header alone."""
    for index in chosen:
        rate = header.sample_rates[index]
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise InputFileError(header.path, f"signal {header.labels[index]!r} is sampled at {rate:g} Hz; "
                                              f"detect reads EEG sampled at {MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz")
    if header.duration_s < MIN_DURATION_S:
        raise InputFileError(header.path, f"recording is {header.duration_s:g} s long; detection needs at "
                                          f"least {MIN_DURATION_S:g} s")


class ValueCheck:
    """Running per-channel min/max of the raw electrodes: NaN/inf and flat recordings are refused.

    EDF samples are integers, but a header with an extreme physical range overflows float32 when
    scaled (inf, and NaN for 0 * inf): such values would poison every window, so they are an error.
    """

    def __init__(self, header: EdfHeader, chosen: Sequence[int]):
        self.header = header
        self.chosen = list(chosen)
        self.low = np.full(len(chosen), np.inf)
        self.high = np.full(len(chosen), -np.inf)

    def update(self, signals: Sequence[np.ndarray]) -> None:
        for i, signal in enumerate(signals):
            if signal.size:
                low, high = float(signal.min()), float(signal.max())
                if not (math.isfinite(low) and math.isfinite(high)):
                    label = self.header.labels[self.chosen[i]]
                    raise InputFileError(self.header.path, f"non-finite samples (NaN or inf) in {label!r} "
                                                           "after scaling: check its physical/digital range")
                self.low[i], self.high[i] = min(self.low[i], low), max(self.high[i], high)

    def finish(self) -> None:
        steps = [abs(self.header.scale(index)[0]) for index in self.chosen]
        spans = (self.high - self.low) / np.asarray(steps)
        if np.all(spans < FLAT_DIGITAL_STEPS):
            raise InputFileError(self.header.path, f"flat recording: all {len(self.chosen)} EEG channels are "
                                                   "constant (no signal to analyse)")


def one_piece_bytes(header: EdfHeader, chosen: Sequence[int], rate: float) -> int:
    """Estimated peak memory of `read_eeg` + `preprocess_recording` on the whole recording.

    The int16 records, the electrodes as float32 twice (read, then stacked for resampling) and
    about four float32 copies at the target rate (resampled, filter padding and passes). Measured
    peak for 1 h at 250 Hz with 22 signals: ~410 MB above the interpreter; this gives 460 MB.
    """
    raw = header.n_records * header.record_samples * 2
    n_in = sum(header.n_records * header.samples_per_record[i] for i in chosen)
    n_out = max(len(chosen), N_CHANNELS) * header.duration_s * rate
    return int(raw + 2 * 4 * n_in + 4 * 4 * n_out)


@dataclass
class Segment:
    """One continuous stretch of an EDF and its store; `offset_s` is its start in file time."""

    offset_s: float
    duration_s: float
    store: RecordingStore


@dataclass
class PreparedFile:
    """An EDF ready for inference: its montage, its continuous segments and the gaps between them."""

    path: str
    montage: ElectrodeMontage
    duration_s: float  # file time: the end of the last data record
    segments: list[Segment]
    gaps: list[tuple[float, float]]  # (start_s, stop_s) in file time without data
    skipped: list[tuple[float, float]]  # segments shorter than MIN_DURATION_S, not analysed

    def close(self) -> None:
        for segment in self.segments:
            segment.store.close()


def prepare_stores(path: str | Path, params: Params, *, window_s: float, progress: bool = False,
                   max_exact_s: float = EXACT_MAX_S, chunk_s: float = CHUNK_S,
                   margin_s: float = MARGIN_S) -> PreparedFile:
    """Each continuous segment of an EDF (the whole file but for EDF+D) as a one-recording store
    holding its network input: preprocessed and quantised like the cache.

    Segments longer than `max_exact_s`, or whose one-piece processing would need more than
    EXACT_MAX_BYTES, are processed in chunks of `chunk_s` with `margin_s` of settling on each
    side. Segments of an EDF+D file shorter than MIN_DURATION_S are skipped (listed in
    `skipped`); a file with none long enough is refused. Raises InputFileError (an EdfError for a
    broken file) naming the file for every bad input. Close the result when done (a chunked store
    keeps the EDF open).
    """
    path = Path(path)
    cfg = params.preprocess
    rate = float(cfg.sample_rate_hz)
    header = read_edf_header(path)
    montage = resolve_header(header, cfg.min_electrodes)
    chosen = list(montage.sources)
    check_header(header, chosen)
    ranges, onsets = read_segments(path, header)
    record_s = header.record_duration_s
    spans = [(float(onsets[a]), (b - a) * record_s, (a, b)) for a, b in ranges]
    end_s = float(onsets[-1] + record_s) if header.n_records else 0.0
    gaps = [(round(s1 + d1, 6), round(s2, 6)) for (s1, d1, _), (s2, _, _) in itertools.pairwise(spans)]
    skipped = [(start, start + duration) for start, duration, _ in spans if duration < MIN_DURATION_S]
    kept = [span for span in spans if span[1] >= MIN_DURATION_S]
    if not kept:
        raise InputFileError(path, f"no continuous segment is at least {MIN_DURATION_S:g} s long "
                                   f"({len(spans)} segments)")
    check = ValueCheck(header, chosen)
    window = round(window_s * rate)
    stem = recording_id(path)
    segments: list[Segment] = []
    one_piece = [span for span in kept if not (
        (span[1] > max_exact_s or one_piece_bytes(header, chosen, rate) * span[1] / max(header.duration_s, 1e-9)
         > EXACT_MAX_BYTES) and span[1] * rate > window)]
    if one_piece:
        # A header range that overflows float32 makes inf/NaN samples; they are reported by
        # `check` as one clear error, so numpy's warnings about them would only be noise.
        with np.errstate(over="ignore", invalid="ignore"):
            recordings = {rec.offset_s: rec for rec in read_eeg_segments(path, min_electrodes=cfg.min_electrodes)}
        for rec in recordings.values():
            check.update(rec.signals)
    try:
        for start, duration, (first, stop) in kept:
            rid = stem if len(spans) == 1 else segment_id(stem, start)
            if any(span[0] == start for span in one_piece):
                recording = recordings[start]
                block = preprocess_recording(recording, cfg)
                signals = quantise(block)
                del block
                store = RecordingStore(rid, ArraySource(signals), duration, rate, montage.present)
            else:
                signal = ChunkedSignal(path, header, montage, cfg, chunk_s, margin_s, records=(first, stop))
                signal.compute_stats(check.update, progress)
                store = RecordingStore(rid, ChunkedSource(signal, window), duration, rate, montage.present)
            segments.append(Segment(start, duration, store))
        check.finish()
    except BaseException:
        for segment in segments:
            segment.store.close()
        raise
    return PreparedFile(str(path), montage, end_s, segments, gaps, skipped)


def prepare_store(path: str | Path, params: Params, *, window_s: float, **options) -> RecordingStore:
    """The one-recording store of a continuous EDF (`prepare_stores`; InputFileError for one with gaps)."""
    prepared = prepare_stores(path, params, window_s=window_s, **options)
    if len(prepared.segments) != 1 or prepared.gaps:
        prepared.close()
        raise InputFileError(path, f"discontinuous EDF+ file ({len(prepared.segments)} segments analysed, "
                                   f"{len(prepared.gaps)} gaps): this needs one continuous recording")
    return prepared.segments[0].store
