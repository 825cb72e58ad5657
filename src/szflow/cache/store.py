"""Windows of preprocessed recordings: a built cache split (`SplitStore`), or one recording
from any source of preprocessed samples (`RecordingStore`), read by the same window code."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from szflow.cache.layout import (
    FORMAT_VERSION,
    INDEX_NAME,
    LABELS_NAME,
    MANIFEST_NAME,
    N_CHANNELS,
    SIGNALS_NAME,
)
from szflow.data.edf import ELECTRODES
from szflow.data.electrodes import parse_presence, presence_string
from szflow.errors import SzflowError

if N_CHANNELS != len(ELECTRODES):
    raise ImportError(f"szflow.cache.layout.N_CHANNELS is {N_CHANNELS}, but there are {len(ELECTRODES)} electrodes")


class CacheError(SzflowError):
    """A cache is missing, incomplete, of another format, or built from other inputs/params."""


class Window(NamedTuple):
    x: np.ndarray  # (19, n) float32, zero past the recording's end
    y: np.ndarray  # (n,) uint8 seizure mask, zero past the end
    valid: np.ndarray  # (n,) bool, False where the window runs past the recording
    present: np.ndarray  # (channels,) bool, False for an electrode the recording lacks (its row is zero)


# torch splits an element-wise copy longer than its grain size (32,768) across threads; on a busy
# machine the thread hand-off costs more than the copy (10x slower measured on 2 shared cores).
_SINGLE_THREAD_CHUNK = 32768


def _to_float32(block16: np.ndarray) -> np.ndarray:
    """float16 -> float32, same shape. torch's conversion is vectorised (F16C) and ~5x faster than
    numpy's cast, which is most of the cost of a window read; it runs in chunks that each stay on
    the calling thread. numpy is the fallback where torch is absent."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; keep the store usable without it
        return block16.astype(np.float32)
    out = np.empty(block16.shape, np.float32)
    source = torch.from_numpy(np.ascontiguousarray(block16).reshape(-1))
    target = torch.from_numpy(out.reshape(-1))
    for first in range(0, source.numel(), _SINGLE_THREAD_CHUNK):
        target[first: first + _SINGLE_THREAD_CHUNK].copy_(source[first: first + _SINGLE_THREAD_CHUNK])
    return out


def presence_array(index: pd.DataFrame, n_channels: int) -> np.ndarray:
    """(rows, n_channels) bool from the index's `present` column ('0'/'1' per electrode, in
    electrode order); every electrode present where the index has no such column."""
    if "present" not in index.columns:
        return np.ones((len(index), n_channels), dtype=bool)
    present = np.zeros((len(index), n_channels), dtype=bool)
    for row, flags in enumerate(index["present"]):
        try:
            present[row] = parse_presence(str(flags))
        except ValueError as error:
            raise CacheError(f"index row {row}, column present: {error}") from None
    return present


def _plain_list(value) -> list:
    """parquet list columns come back as numpy arrays of arrays; give callers plain lists."""
    if value is None:
        return []
    return [list(item) if isinstance(item, np.ndarray | list | tuple) else item for item in value]


class SignalSource(Protocol):
    """Preprocessed float16 samples of one recording, read span by span (see `RecordingStore`)."""

    n_channels: int
    n_samples: int

    def samples(self, first: int, stop: int) -> np.ndarray:
        """(n_channels, stop - first) float16 samples, 0 <= first < stop <= n_samples."""
        ...

    def close(self) -> None: ...


class ArraySource:
    """A preprocessed recording held in memory as one (channels, n) float16 array."""

    def __init__(self, signals: np.ndarray):
        self.signals = signals
        self.n_channels, self.n_samples = signals.shape

    def samples(self, first: int, stop: int) -> np.ndarray:
        return self.signals[:, first:stop]

    def close(self) -> None:
        self.signals = None


class WindowStore(ABC):
    """Recordings listed in `index` (one row each) and windows of their signal and labels.

    Rows are addressed by position in `index` (0..n-1) or by recording id. Subclasses say where
    the samples live (`span`); padding past a recording's end is this class's, so every store
    pads alike.
    """

    def __init__(self, split: str, sample_rate_hz: float, index: pd.DataFrame, n_channels: int = N_CHANNELS):
        self.index = index
        self.split = str(split)
        self.sample_rate_hz = float(sample_rate_hz)
        self.n_channels = int(n_channels)
        self._offsets = index["offset"].to_numpy(np.int64)
        self._lengths = index["length"].to_numpy(np.int64)
        self._rows = {rid: i for i, rid in enumerate(index["recording_id"])}
        self._present = presence_array(index, self.n_channels)

    @abstractmethod
    def span(self, row: int, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """float16 signal (channels, stop - first) and uint8 labels of samples [first, stop) of a
        row, 0 <= first < stop <= its length."""

    def __len__(self) -> int:
        return len(self.index)

    @property
    def recording_ids(self) -> list[str]:
        return list(self.index["recording_id"])

    def row_of(self, row_or_recording_id: int | str) -> int:
        """Position in `index` of a row number or recording id (KeyError/IndexError if unknown)."""
        if isinstance(row_or_recording_id, str):
            try:
                return self._rows[row_or_recording_id]
            except KeyError:
                raise KeyError(f"recording {row_or_recording_id!r} is not in the {self.split} store") from None
        row = int(row_or_recording_id)
        if not 0 <= row < len(self.index):
            raise IndexError(f"row {row} out of range for {len(self.index)} recordings")
        return row

    def length(self, row_or_recording_id: int | str) -> int:
        """Samples in the recording."""
        return int(self._lengths[self.row_of(row_or_recording_id)])

    def present(self, row_or_recording_id: int | str) -> np.ndarray:
        """(channels,) bool: which electrodes the recording has (the others are zero rows)."""
        return self._present[self.row_of(row_or_recording_id)].copy()

    def seizure_intervals(self, row_or_recording_id: int | str) -> list[tuple[float, float]]:
        """Seizure intervals of the recording, seconds."""
        value = self.index["seizure_intervals"].iat[self.row_of(row_or_recording_id)]
        return [(float(a), float(b)) for a, b in value]

    def window(self, row_or_recording_id: int | str, start_sample: int, n_samples: int) -> Window:
        """Samples [start, start + n) of a recording: x (channels, n) float32, y (n,) uint8, valid (n,) bool,
        present (channels,) bool.

        Parts of the window before 0 or past the recording's end are zero with valid False (never
        samples of a neighbouring recording). Only the float32 output is allocated.
        """
        row = self.row_of(row_or_recording_id)
        length = int(self._lengths[row])
        start_sample, n_samples = int(start_sample), int(n_samples)
        first, stop = max(start_sample, 0), min(start_sample + n_samples, length)
        if first == start_sample and stop == start_sample + n_samples:
            x16, y = self.span(row, first, stop)
            return Window(_to_float32(x16), y, np.ones(n_samples, dtype=bool), self._present[row].copy())
        x = np.zeros((self.n_channels, n_samples), np.float32)
        y = np.zeros(n_samples, np.uint8)
        valid = np.zeros(n_samples, dtype=bool)
        if stop > first:
            a, b = first - start_sample, stop - start_sample
            x16, y[a:b] = self.span(row, first, stop)
            x[:, a:b] = _to_float32(x16)
            valid[a:b] = True
        return Window(x, y, valid, self._present[row].copy())

    def recording(self, row_or_recording_id: int | str) -> Window:
        """The whole recording as one window."""
        row = self.row_of(row_or_recording_id)
        return self.window(row, 0, int(self._lengths[row]))


class SplitStore(WindowStore):
    """One split of the cache: windows are slices of one memory-mapped array.

    Open with `SplitStore.open(cache_dir, split)`. Safe to hand to DataLoader workers: pickling
    keeps only the paths, and each process maps the files itself.
    """

    def __init__(self, split_dir: Path, manifest: dict, index: pd.DataFrame):
        super().__init__(manifest["split"], manifest["sample_rate_hz"], index)
        self.split_dir = Path(split_dir)
        self.manifest = manifest
        self.params_hash = str(manifest["preprocess_params_hash"])
        self._signals: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, cache_dir: str | Path, split: str, expected_params_hash: str | None = None) -> SplitStore:
        """Open `<cache_dir>/<split>`; CacheError if it is absent, incomplete or (when
        `expected_params_hash` is given) built with other preprocess params."""
        split_dir = Path(cache_dir) / split
        manifest_path = split_dir / MANIFEST_NAME
        if not manifest_path.exists():
            raise CacheError(f"{split_dir}: no cache for split '{split}' (no {MANIFEST_NAME}); run the "
                             "cache stage (`python stages/cache.py` or `dvc repro cache`)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CacheError(f"{manifest_path}: unreadable manifest: {exc}") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise CacheError(f"{split_dir}: cache format {manifest.get('format_version')}, this szflow reads "
                             f"format {FORMAT_VERSION}; rebuild the cache")
        if expected_params_hash is not None and manifest.get("preprocess_params_hash") != expected_params_hash:
            raise CacheError(
                f"{split_dir}: built with preprocess params {manifest.get('preprocess_params_hash')}, "
                f"but the current params hash to {expected_params_hash}; re-run preprocess and cache")
        try:
            index = pd.read_parquet(split_dir / INDEX_NAME)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise CacheError(f"{split_dir / INDEX_NAME}: unreadable index: {exc}") from None
        for column in ("seizure_intervals", "seizure_types"):
            index[column] = [_plain_list(v) for v in index[column]]
        if len(index) != manifest["n_recordings"]:
            raise CacheError(f"{split_dir}: index has {len(index)} rows, manifest says {manifest['n_recordings']}")
        store = cls(split_dir, manifest, index)
        store._open_arrays()
        return store

    def _open_arrays(self) -> None:
        total = int(self.manifest["total_samples"])
        if total == 0:
            # numpy cannot memory-map an empty array.
            self._signals = np.zeros((N_CHANNELS, 0), np.float16)
            self._labels = np.zeros(0, np.uint8)
            return
        try:
            signals = np.load(self.split_dir / SIGNALS_NAME, mmap_mode="r")
            labels = np.load(self.split_dir / LABELS_NAME, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise CacheError(f"{self.split_dir}: cannot map the arrays: {exc}") from None
        if signals.shape != (N_CHANNELS, total) or signals.dtype != np.float16:
            raise CacheError(f"{self.split_dir / SIGNALS_NAME}: shape {signals.shape} {signals.dtype}, "
                             f"expected ({N_CHANNELS}, {total}) float16")
        if labels.shape != (total,) or labels.dtype != np.uint8:
            raise CacheError(f"{self.split_dir / LABELS_NAME}: shape {labels.shape} {labels.dtype}, "
                             f"expected ({total},) uint8")
        self._signals, self._labels = signals, labels

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_signals"] = state["_labels"] = None  # never pickle the mapped data itself
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open_arrays()

    @property
    def total_samples(self) -> int:
        return int(self.manifest["total_samples"])

    def span(self, row: int, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        offset = int(self._offsets[row])
        return (np.array(self._signals[:, offset + first: offset + stop]),
                np.array(self._labels[offset + first: offset + stop]))

    def labels(self, row_or_recording_id: int | str) -> np.ndarray:
        """Read-only view of the recording's per-sample seizure mask."""
        row = self.row_of(row_or_recording_id)
        offset, length = int(self._offsets[row]), int(self._lengths[row])
        return self._labels[offset: offset + length]

    def __repr__(self) -> str:
        hours = self.total_samples / self.sample_rate_hz / 3600
        return f"SplitStore({self.split_dir}, {len(self)} recordings, {hours:.2f} h)"


class RecordingStore(WindowStore):
    """One preprocessed recording from a `SignalSource`, read through the same window code as the
    cache, so inference over it is the eval stage's own. Labels are zeros (a recording to detect
    on has none). Lives in one process: run inference over it with num_workers=0.
    """

    def __init__(self, recording_id: str, source: SignalSource, duration_s: float, sample_rate_hz: float,
                 present: np.ndarray | None = None):
        """`present`: the electrodes the resolver found (szflow.data.electrodes); None: all 19."""
        mask = np.ones(source.n_channels, dtype=bool) if present is None else np.asarray(present, dtype=bool)
        index = pd.DataFrame({
            "recording_id": [recording_id], "offset": [0], "length": [int(source.n_samples)],
            "duration_s": [float(duration_s)], "seizure_intervals": [[]], "seizure_types": [[]],
            "present": [presence_string(mask)],
        })
        super().__init__("detect", sample_rate_hz, index, n_channels=source.n_channels)
        self.source = source

    def span(self, row: int, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.source.samples(first, stop), np.zeros(stop - first, np.uint8)

    def close(self) -> None:
        self.source.close()

    def __getstate__(self) -> dict:
        raise TypeError("a RecordingStore lives in memory; run predict_tracks with num_workers=0")
