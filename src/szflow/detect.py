"""`szflow detect`: seizure events for any EDF, computed exactly as the eval stage computes them.

The path from an EDF to events is the training/eval path, step for step:
  1. `read_eeg` (the 19 electrodes, any montage labels, any rate) and `preprocess_recording`
     (resample, common average reference, zero-phase band-pass + notch, robust normalisation)
     with params.yaml's `preprocess` section;
  2. the float16 quantisation the cache applies (`szflow.signal.pipeline.STORAGE_DTYPE`);
  3. `szflow.inference.predict_tracks` over a one-recording store, so windows, overlap, batching,
     masking of the padded tail and stitching are the eval stage's own code;
  4. `probs_to_events` with a frozen operating point from `models/operating_points.json` and
     `events_to_annotation` + `write_csv_bi` / `write_events_tsv`, as eval writes its predictions.
For a recording of the eval split the network input is the cache's, bit for bit, and the events
are eval's (tests/test_detect.py). The probabilities equal eval's bit for bit when the windows are
batched alike; eval batches windows of several recordings together, and torch's CPU kernels (oneDNN
convolutions, BLAS matmuls) round differently for different batch sizes, so they can differ by
float32 round-off (~1e-6): events differ only if a smoothed probability lies that close to a
threshold.

Long recordings. Whole-recording preprocessing holds several float32 copies of the signal (about
70 MB each per hour), so recordings longer than `EXACT_MAX_S` (2 h), or whose one-piece processing
would need more than `EXACT_MAX_BYTES` (1.2 GB: high sample rates), are processed in chunks:
  pass 1 reads `CHUNK_S` of EEG at a time (plus `MARGIN_S` on each side, so the zero-phase IIR
         filters and the polyphase resampler settle before the kept part) and keeps only the
         samples `szflow.signal.normalise.statistics_sample` would pick from the whole filtered
         recording (a fixed set of columns for a given length); `channel_stats` of those gives
         the whole-recording normalisation statistics;
  pass 2 recomputes each chunk (one window longer, so every inference window lies inside one
         chunk), normalises it with those statistics, quantises it to float16 and feeds it to
         `predict_tracks` through a store that serves windows from the current chunk.
Differences from the one-piece result: the float32 round-off of the recursive filters depends on
where a segment starts (about 5e-5 of a channel's range; the filters' start-up transients
themselves decay long before the margin ends: e^-60 for the 0.5 Hz pole over 60 s), and so do the
statistics by as much. After float16 quantisation about a fifth of the samples differ, by at
most 0.004 in units of the channel's spread (one float16 step at |x| in [4, 8)) and 7e-5 on
average, and the network's probabilities by ~1e-4 (tests/test_detect.py). Memory is one chunk (about
40 MB of float32 per channel-half-hour block), the statistics sample (5 MB), the model and torch,
whatever the recording's length.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from szflow.cache.store import SplitStore, Window, _to_float32
from szflow.config import Params, PreprocessConfig
from szflow.data.edf import EdfHeader, read_edf_header, read_eeg, select_electrodes
from szflow.errors import ConfigError, EdfError, InputFileError
from szflow.signal.normalise import NormalisationStats, channel_stats, statistics_sample

log = logging.getLogger("szflow.detect")

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
FORMATS = {"csv_bi": ".csv_bi", "tsv": "_events.tsv"}
OPERATING_POINTS_NAME = "operating_points.json"


# ----------------------------------------------------------------------------- small helpers
def recording_id(path: str | Path) -> str:
    """The recording id eval uses for an EDF: the stem, without BIDS's `_eeg` suffix."""
    stem = Path(path).stem
    return stem.removesuffix("_eeg")


def output_name(rid: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    return rid + FORMATS[fmt]


def load_operating_point(path: str | Path, key: str | float, checkpoint_step: int | None = None) -> dict:
    """The detector's settings for false-alarm target `key` from an `operating_points.json`.

    ConfigError (naming the file) when it is missing or malformed, has no such target, or was
    tuned for another checkpoint step than `checkpoint_step` (the eval stage refuses that too).
    """
    from szflow.evaluate import SETTINGS_KEYS
    from szflow.postprocess import PostprocessSettings
    from szflow.scoring import target_key

    path = Path(path)
    try:
        target = target_key(float(key))
    except ValueError:
        raise ConfigError(f"--operating-point {key!r} is not a number of false alarms per 24 h") from None
    if not path.is_file():
        raise ConfigError(f"{path}: operating points not found (run the dev stage, or pass "
                          "--operating-points FILE)")
    try:
        frozen = json.loads(path.read_text(encoding="utf-8"))
        points = frozen["detector"]
        if not isinstance(points, dict):
            raise TypeError("'detector' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not an operating points file ({type(exc).__name__}: {exc})") from None
    if target not in points:
        raise ConfigError(f"{path}: no operating point for {target} FA/24h (available: "
                          f"{', '.join(map(str, points))})")
    step = frozen.get("checkpoint_step")
    if checkpoint_step is not None and step is not None and int(step) != int(checkpoint_step):
        raise ConfigError(f"{path}: tuned for checkpoint step {step}, but the checkpoint is step "
                          f"{checkpoint_step}: re-run the dev stage or pass the matching --operating-points")
    point = points[target]
    missing = [name for name in SETTINGS_KEYS if name not in point]
    if missing:
        raise ConfigError(f"{path}: operating point {target} lacks {', '.join(missing)}")
    try:
        PostprocessSettings.from_any(point)  # validates ranges (ConfigError)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: operating point {target}: {exc}") from None
    return {name: point[name] for name in SETTINGS_KEYS}


def find_edfs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(EDF path, output sub-folder) for every input: a file as given, a folder searched recursively.

    Files found under a folder keep their relative sub-folder in the output, so recordings of the
    same name in different sessions never overwrite each other. A path that does not exist is
    returned too (with an empty sub-folder): the caller reports it as that file's failure.
    """
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            edfs = sorted(p for p in item.rglob("*") if p.suffix.lower() == ".edf" and p.is_file())
            found.extend((p, p.parent.relative_to(item)) for p in edfs)
            if not edfs:
                found.append((item, Path()))  # reported as "no .edf files" by detect_paths
        else:
            found.append((item, Path()))
    return found


# ----------------------------------------------------------------------------- input checks
def _check_header(header: EdfHeader, chosen: Sequence[int]) -> None:
    if header.reserved.upper().startswith("EDF+D"):
        # Records of a discontinuous EDF+ file are not back to back in time: reading them as one
        # signal would put events at wrong times and filter across the gaps.
        raise InputFileError(header.path, "discontinuous EDF+ (EDF+D): recordings with gaps are not supported; "
                                          "export each continuous segment as its own EDF")
    for index in chosen:
        rate = header.sample_rates[index]
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise InputFileError(header.path, f"signal {header.labels[index]!r} is sampled at {rate:g} Hz; "
                                              f"detect reads EEG sampled at {MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz")
    if header.duration_s < MIN_DURATION_S:
        raise InputFileError(header.path, f"recording is {header.duration_s:g} s long; detection needs at "
                                          f"least {MIN_DURATION_S:g} s")


class _ValueCheck:
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
    n_out = len(chosen) * header.duration_s * rate
    return int(raw + 2 * 4 * n_in + 4 * 4 * n_out)


# ----------------------------------------------------------------------------- stores for predict_tracks
class RecordingStore(SplitStore):
    """One preprocessed recording held in memory, read through `SplitStore`'s own window code.

    `predict_tracks` needs a store; giving it a `SplitStore` whose arrays are this recording's
    float16 signal (instead of the cache's memory map) makes detect's inference the eval stage's,
    byte for byte. Labels are zeros (a recording to detect on has none).
    """

    def __init__(self, rid: str, n_samples: int, duration_s: float, sample_rate_hz: float,
                 signals: np.ndarray | None = None):
        manifest = {"split": "detect", "sample_rate_hz": float(sample_rate_hz), "preprocess_params_hash": "",
                    "total_samples": int(n_samples), "n_recordings": 1}
        index = pd.DataFrame({
            "recording_id": [rid], "offset": [0], "length": [int(n_samples)], "duration_s": [float(duration_s)],
            "seizure_intervals": [[]], "seizure_types": [[]],
        })
        super().__init__(Path("."), manifest, index)
        self._signals = signals
        self._labels = np.zeros(int(n_samples), np.uint8)

    def _open_arrays(self) -> None:  # nothing on disk to map
        pass

    def __getstate__(self) -> dict:
        raise TypeError("a detect store lives in memory; run predict_tracks with num_workers=0")


class _ChunkedSignal:
    """The preprocessed (19, n) signal of a long EDF, computed one chunk at a time (see module doc)."""

    def __init__(self, path: Path, header: EdfHeader, chosen: list[int], cfg: PreprocessConfig,
                 chunk_s: float, margin_s: float):
        from szflow.signal.filters import design_filter
        from szflow.signal.resample import rational_ratio, resampled_length

        self.path, self.header, self.chosen, self.cfg = path, header, chosen, cfg
        self.rate = float(cfg.sample_rate_hz)
        self.sos = design_filter(self.rate, tuple(cfg.bandpass_hz), cfg.bandpass_order, cfg.notch_hz,
                                 cfg.notch_quality)
        self.spr = [header.samples_per_record[i] for i in chosen]
        self.rates = [header.sample_rates[i] for i in chosen]
        self.ratios = [rational_ratio(float(r), self.rate) for r in self.rates]
        self.n_in = [header.n_records * s for s in self.spr]
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

    # ------------------------------------------------------------------ reading
    def _read(self, handle, first_record: int, n_records: int) -> list[np.ndarray]:
        """The chosen electrodes over data records [first, first + n) as float32 physical values.

        The same arithmetic as `read_eeg` (int16 times a float32 gain, plus a float32 offset), so a
        sample has the same value whichever way it was read.
        """
        header = self.header
        record_samples = header.record_samples
        handle.seek(header.header_bytes + 2 * first_record * record_samples)
        block = np.fromfile(handle, dtype="<i2", count=n_records * record_samples)
        if block.size != n_records * record_samples:
            raise EdfError(self.path, f"truncated: data records {first_record}..{first_record + n_records} "
                                      "are not all in the file")
        records = block.reshape(n_records, record_samples)
        starts = np.concatenate(([0], np.cumsum(header.samples_per_record)))
        out_signals = []
        # Overflowing values are reported by _ValueCheck (see predict_file); no numpy warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            for index in self.chosen:
                spr = header.samples_per_record[index]
                gain, offset = header.scale(index)
                out = np.empty((n_records, spr), dtype=np.float32)
                np.multiply(records[:, starts[index]:starts[index] + spr], np.float32(gain), out=out)
                if offset != 0.0:
                    out += np.float32(offset)
                out_signals.append(out.reshape(-1))
        return out_signals

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
        signals = self._read(handle, record_first, record_stop - record_first)
        return [sig[f - record_first * s: t - record_first * s]
                for sig, f, t, s in zip(signals, firsts, stops, self.spr, strict=True)], out_stop - out_first

    def filtered(self, handle, first: int, stop: int, check: _ValueCheck | None = None) -> np.ndarray:
        """Output samples [first, stop) after resampling, re-referencing and filtering (float32)."""
        from szflow.signal.filters import zero_phase_filter
        from szflow.signal.montage import common_average_reference
        from szflow.signal.resample import resample_channels

        seg_first = max(0, first - self.margin) // self.align * self.align
        seg_stop = min(self.n_out, stop + self.margin)
        raw, n_keep = self.raw_segment(handle, seg_first, seg_stop)
        if check is not None:
            check.update(raw)
        block = resample_channels(raw, self.rates, self.rate)
        del raw
        block = np.ascontiguousarray(block[:, :n_keep])
        common_average_reference(block)
        filtered = zero_phase_filter(block, self.sos)
        return filtered[:, first - seg_first: stop - seg_first]

    # ------------------------------------------------------------------ pass 1
    def compute_stats(self, check: _ValueCheck, progress: bool) -> NormalisationStats:
        """Whole-recording normalisation statistics, from the very samples `channel_stats` would use."""
        from tqdm.auto import tqdm

        columns = statistics_columns(self.n_out)
        sample = np.empty((len(self.chosen), columns.size), np.float32)
        hours = self.n_out / self.rate / 3600
        with open(self.path, "rb") as handle, tqdm(total=hours, desc="preprocess", unit="h", leave=False,
                                                  disable=not progress,
                                                  bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} h") as bar:
            for first in range(0, self.n_out, self.chunk):
                stop = min(first + self.chunk, self.n_out)
                block = self.filtered(handle, first, stop, check)
                inside = (columns >= first) & (columns < stop)
                sample[:, inside] = block[:, columns[inside] - first]
                bar.update((stop - first) / self.rate / 3600)
        check.finish()
        # `sample` is short enough that `channel_stats` uses all of it, as it would have used
        # these same columns of the whole recording.
        self.stats = channel_stats(sample, self.cfg.normalisation)
        return self.stats

    # ------------------------------------------------------------------ pass 2
    def normalised16(self, handle, first: int, stop: int) -> np.ndarray:
        """Output samples [first, stop), normalised, clipped and quantised like the cache (float16)."""
        from szflow.signal.pipeline import STORAGE_DTYPE

        assert self.stats is not None, "compute_stats first"
        block = np.array(self.filtered(handle, first, stop))
        # The operations of `normalise`, with the whole-recording statistics of pass 1.
        block -= self.stats.centre[:, None]
        block *= (1.0 / self.stats.scale)[:, None]
        np.clip(block, -self.cfg.clip, self.cfg.clip, out=block)
        return block.astype(STORAGE_DTYPE)


def statistics_columns(n: int) -> np.ndarray:
    """Columns of a (channels, n) block that `statistics_sample` draws the statistics from.

    Asked of `statistics_sample` itself (applied to a row of column numbers), so detect follows
    whatever rule it uses without a copy of it. The row is int32: 88 MB for 24 h, once per file.
    """
    return np.asarray(statistics_sample(np.arange(n, dtype=np.int32)[None, :])[0], dtype=np.int64)


class ChunkedRecordingStore(RecordingStore):
    """A long recording served window by window from one preprocessed chunk at a time.

    Chunk k holds output samples [k * C, (k + 1) * C + W) (C the chunk, W the window), so every
    window starting in [k * C, (k + 1) * C) lies inside chunk k. `predict_tracks` reads windows in
    time order, so each chunk is computed once; a window out of order recomputes its chunk.
    """

    def __init__(self, rid: str, signal: _ChunkedSignal, window: int):
        super().__init__(rid, signal.n_out, signal.header.duration_s, signal.rate, signals=None)
        self.signal = signal
        self.window_samples = int(window)
        self._chunk_index = -1
        self._chunk: np.ndarray | None = None
        self._handle = open(signal.path, "rb")  # noqa: SIM115 - closed by close()

    def close(self) -> None:
        self._handle.close()
        self._chunk = None

    def _chunk_for(self, sample: int) -> tuple[int, np.ndarray]:
        k = sample // self.signal.chunk
        if k != self._chunk_index:
            self._chunk = None  # free the old chunk before computing the next
            first = k * self.signal.chunk
            stop = min(first + self.signal.chunk + self.window_samples, self.signal.n_out)
            self._chunk = self.signal.normalised16(self._handle, first, stop)
            self._chunk_index = k
        return k * self.signal.chunk, self._chunk

    def window(self, row_or_recording_id: int | str, start_sample: int, n_samples: int) -> Window:
        self.row_of(row_or_recording_id)
        start_sample, n_samples = int(start_sample), int(n_samples)
        length = self.signal.n_out
        first, stop = max(start_sample, 0), min(start_sample + n_samples, length)
        if n_samples > self.window_samples or stop <= first:
            raise ValueError(f"window [{start_sample}, {start_sample + n_samples}) does not fit the chunks")
        offset, chunk = self._chunk_for(first)
        x16 = chunk[:, first - offset: stop - offset]
        y = np.zeros(n_samples, np.uint8)
        if first == start_sample and stop == start_sample + n_samples:
            return Window(_to_float32(x16), y, np.ones(n_samples, dtype=bool))
        # As SplitStore.window: zero signal, valid False where the window runs past the recording.
        x = np.zeros((x16.shape[0], n_samples), np.float32)
        valid = np.zeros(n_samples, dtype=bool)
        a, b = first - start_sample, stop - start_sample
        x[:, a:b] = _to_float32(np.ascontiguousarray(x16))
        valid[a:b] = True
        return Window(x, y, valid)


# ----------------------------------------------------------------------------- one file
@dataclass
class InferenceSettings:
    """Everything about running the network that is not the network: from params and the CLI."""

    window_s: float
    overlap_s: float
    frame_rate_hz: float
    batch_size: int
    device: object  # torch.device
    precision: str = "fp32"

    @classmethod
    def from_params(cls, params: Params, device=None, batch_size: int | None = None) -> InferenceSettings:
        from szflow.inference import resolve_device

        return cls(window_s=params.sampler.window_s, overlap_s=params.sampler.inference_overlap_s,
                   frame_rate_hz=params.model.frame_rate_hz,
                   batch_size=int(batch_size or params.hardware.inference_batch_size),
                   device=resolve_device(device or params.hardware.device), precision=params.hardware.precision)


def prepare_store(path: str | Path, params: Params, *, window_s: float, progress: bool = False,
                  max_exact_s: float = EXACT_MAX_S, chunk_s: float = CHUNK_S,
                  margin_s: float = MARGIN_S) -> RecordingStore:
    """A one-recording store holding the EDF's network input: preprocessed and quantised like the cache.

    Raises InputFileError (an EdfError for a broken file) naming the file for every bad input.
    Close it with `close_store` (a chunked store keeps the EDF open).
    """
    from szflow.signal.pipeline import STORAGE_DTYPE, preprocess_recording

    path = Path(path)
    cfg = params.preprocess
    rate = float(cfg.sample_rate_hz)
    header = read_edf_header(path)
    chosen = select_electrodes(header)
    _check_header(header, chosen)
    rid = recording_id(path)
    check = _ValueCheck(header, chosen)
    window = round(window_s * rate)
    too_big = header.duration_s > max_exact_s or one_piece_bytes(header, chosen, rate) > EXACT_MAX_BYTES
    # A recording shorter than one window is never chunked (it is one padded window anyway).
    if not (too_big and header.duration_s * rate > window):
        # A header range that overflows float32 makes inf/NaN samples; they are reported by
        # `check` as one clear error, so numpy's warnings about them would only be noise.
        with np.errstate(over="ignore", invalid="ignore"):
            recording = read_eeg(path)
        check.update(recording.signals)
        check.finish()
        block = preprocess_recording(recording, cfg)
        del recording
        signals = block.astype(STORAGE_DTYPE)
        del block
        return RecordingStore(rid, signals.shape[1], header.duration_s, rate, signals=signals)
    signal = _ChunkedSignal(path, header, chosen, cfg, chunk_s, margin_s)
    signal.compute_stats(check, progress)
    return ChunkedRecordingStore(rid, signal, window)


def close_store(store: RecordingStore) -> None:
    if isinstance(store, ChunkedRecordingStore):
        store.close()


def predict_file(path: str | Path, model, params: Params, *, settings: InferenceSettings | None = None,
                 progress: bool = False, **store_options):
    """The per-frame seizure probability track (`ProbabilityTrack`) of one EDF.

    `store_options` go to `prepare_store` (max_exact_s, chunk_s, margin_s). Raises InputFileError
    (an EdfError for a broken file) naming the file for every bad input.
    """
    from szflow.inference import predict_tracks

    settings = settings or InferenceSettings.from_params(params)
    store = prepare_store(path, params, window_s=settings.window_s, progress=progress, **store_options)
    rid = store.recording_ids[0]
    try:
        (track,) = predict_tracks(
            model, store, [rid], window_s=settings.window_s, overlap_s=settings.overlap_s,
            batch_size=settings.batch_size, device=settings.device, precision=settings.precision,
            frame_rate_hz=settings.frame_rate_hz, progress=progress,
        )
    finally:
        close_store(store)
    if not np.isfinite(track.probabilities).all():
        raise InputFileError(path, "the network produced non-finite probabilities for this recording")
    return track


def events_of_track(track, operating_point: dict) -> list[tuple[float, float]]:
    """Events of a track at an operating point: the call `szflow.evaluate` makes for eval."""
    from szflow.evaluate import SETTINGS_KEYS
    from szflow.postprocess import probs_to_events

    return probs_to_events(track.probabilities, track.frame_rate_hz, duration_s=track.duration_s,
                           **{key: operating_point[key] for key in SETTINGS_KEYS})


def detect_file(path: str | Path, model, params: Params, operating_point: dict, **kwargs) -> list[tuple[float, float]]:
    """Seizure events (start_s, stop_s) of one EDF; keyword arguments as `predict_file`."""
    return events_of_track(predict_file(path, model, params, **kwargs), operating_point)


def write_events(path: Path, rid: str, events, duration_s: float, fmt: str) -> None:
    """Write events as TUSZ `.csv_bi` or SzCORE `_events.tsv` (atomically), as eval writes them."""
    from szflow.data.annotations import write_csv_bi, write_events_tsv
    from szflow.postprocess import events_to_annotation

    annotation = events_to_annotation(rid, events, duration_s)
    (write_csv_bi if fmt == "csv_bi" else write_events_tsv)(path, annotation)


# ----------------------------------------------------------------------------- many files
@dataclass
class FileResult:
    path: str
    status: str = "failed"  # ok | failed
    reason: str = ""
    output: str = ""
    n_events: int = 0
    duration_s: float = 0.0
    seconds: float = 0.0

    @property
    def message(self) -> str:
        """`<file>: <reason>` (the reason of an InputFileError already names the file)."""
        return self.reason if self.reason.startswith(self.path) else f"{self.path}: {self.reason}"


@dataclass
class DetectSummary:
    files: list[FileResult] = field(default_factory=list)
    out_dir: str = ""

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status != "ok"]

    @property
    def ok(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "ok"]

    def as_dict(self) -> dict:
        return {"out_dir": self.out_dir, "ok": len(self.ok), "failed": len(self.failed),
                "files": [vars(f) for f in self.files]}


def detect_paths(inputs: Sequence[str | Path], model, params: Params, operating_point: dict, out_dir: str | Path,
                 fmt: str = "csv_bi", *, settings: InferenceSettings | None = None, progress: bool = False,
                 on_result: Callable[[FileResult], None] | None = None, **kwargs) -> DetectSummary:
    """Detect on every EDF of `inputs` (files, or folders searched recursively for *.edf).

    Never raises for a bad file: each failure is a `FileResult` with its reason, the other files
    go on, and nothing already written is lost (outputs are written atomically, one per EDF).
    `on_result` is called as each file finishes (the CLI prints from it).
    """
    out_dir = Path(out_dir)
    output_name("x", fmt)  # ConfigError for a bad format before any work
    settings = settings or InferenceSettings.from_params(params)
    summary = DetectSummary(out_dir=str(out_dir))
    written: dict[Path, str] = {}
    for edf, sub in find_edfs(inputs):
        started = time.perf_counter()
        result = FileResult(path=str(edf))
        try:
            if edf.is_dir():
                raise InputFileError(edf, "no .edf files in this folder")
            if not edf.exists():
                raise InputFileError(edf, "file not found")
            rid = recording_id(edf)
            target = out_dir / sub / output_name(rid, fmt)
            if target in written:
                raise InputFileError(edf, f"its output {target} would overwrite that of {written[target]}")
            track = predict_file(edf, model, params, settings=settings, progress=progress, **kwargs)
            events = events_of_track(track, operating_point)
            try:
                write_events(target, rid, events, track.duration_s, fmt)
            except OSError as exc:
                raise InputFileError(edf, f"cannot write {target}: {exc.strerror or exc}") from None
            written[target] = str(edf)
            result.status, result.output, result.n_events = "ok", str(target), len(events)
            result.duration_s = float(track.duration_s)
        except InputFileError as exc:
            result.reason = f"{exc.path}: {exc.reason}"
        except MemoryError:
            result.reason = "out of memory"
        # A batch run reports every other failure (a bug, a CUDA error) and goes on to the next file.
        except Exception as exc:
            log.debug("unexpected failure on %s", edf, exc_info=True)
            result.reason = f"unexpected {type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        summary.files.append(result)
        if on_result is not None:
            on_result(result)
    return summary


def run_detect(inputs: Sequence[str | Path], *, checkpoint: str | Path, operating_point: str = "10",
               operating_points: str | Path | None = None, out_dir: str | Path = "detections",
               fmt: str = "csv_bi", params_dir: str | Path = ".", device: str | None = None,
               batch_size: int | None = None, progress: bool = False,
               on_result: Callable[[FileResult], None] | None = None) -> DetectSummary:
    """What `szflow detect` does: load params, the checkpoint and the operating point, then detect.

    Setup problems (params, checkpoint of another model config, operating points, device, format)
    raise SzflowError before any file is touched; per-file problems are in the summary.
    """
    from szflow.config import load_params
    from szflow.model.checkpoint import load_detector

    if not inputs:
        raise ConfigError("no EDF files or folders given")
    output_name("x", fmt)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    params = load_params(params_dir)
    settings = InferenceSettings.from_params(params, device=device, batch_size=batch_size)
    checkpoint = Path(checkpoint)
    points_path = Path(operating_points) if operating_points else checkpoint.parent / OPERATING_POINTS_NAME
    model, ckpt = load_detector(checkpoint, expected_config=params.model, mamba_impl=params.hardware.mamba_impl,
                                device=settings.device)
    point = load_operating_point(points_path, operating_point, checkpoint_step=ckpt.step)
    log.info("detect: %s step %d, operating point %s FA/24h %s, device %s", checkpoint, ckpt.step,
             operating_point, point, settings.device)
    return detect_paths(inputs, model, params, point, out_dir, fmt, settings=settings, progress=progress,
                        on_result=on_result)


def format_result(result: FileResult) -> str:
    """One stdout line per file that worked."""
    hours = result.duration_s / 3600
    return (f"ok: {result.path} -> {result.output} ({result.n_events} event{'s' if result.n_events != 1 else ''}, "
            f"{hours:.2f} h of EEG in {result.seconds:.1f} s)")


def format_summary(summary: DetectSummary) -> str:
    n = len(summary.files)
    head = (f"{n} file{'s' if n != 1 else ''}: {len(summary.ok)} ok, {len(summary.failed)} failed; "
            f"events in {summary.out_dir}{os.sep}")
    lines = [head]
    lines += [f"  failed: {f.message}" for f in summary.failed]
    return "\n".join(lines)


__all__ = [
    "CHUNK_S", "EXACT_MAX_S", "MARGIN_S", "MIN_DURATION_S", "ChunkedRecordingStore", "DetectSummary",
    "FileResult", "InferenceSettings", "RecordingStore", "close_store", "detect_file", "detect_paths",
    "events_of_track", "find_edfs", "format_result", "format_summary", "load_operating_point", "predict_file",
    "prepare_store", "recording_id", "run_detect", "statistics_columns", "write_events",
]
