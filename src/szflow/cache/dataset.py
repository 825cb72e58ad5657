"""torch Datasets over a `SplitStore`, and a DataLoader that follows the hardware profile.

Each item is a dict:
  x      float32 (19, window_samples)        the normalised EEG window (zero past the recording end)
  y      float32 (window_samples,) or (frames,)  seizure labels 0/1, per sample or per frame
  valid  bool, same shape as y                False where the window runs past the recording end
  present bool (19,)                          False for an electrode the recording lacks (a zero row)
  row, start  int                             the recording's row in the store and the window start
  index  int (inference only)                 the window's position in `InferenceWindows`
With `frame_rate_hz` set, labels are reduced to frames of sample_rate / frame_rate samples
(`any`: a frame is seizure if any of its samples is; `majority`: if more than half are), and a
frame is valid when its first sample is, so the number of valid frames of a recording is
ceil(length / samples_per_frame), the length of a stitched track.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from szflow.cache.sampler import InferenceWindows
from szflow.config import HardwareConfig
from szflow.signal.labels import frame_labels


def samples_per_frame(sample_rate_hz: float, frame_rate_hz: float | None, window: int) -> int | None:
    if frame_rate_hz is None:
        return None
    spf = sample_rate_hz / frame_rate_hz
    if abs(spf - round(spf)) > 1e-9 or round(spf) < 1 or window % round(spf):
        raise ValueError(f"frame rate {frame_rate_hz} Hz must divide the sample rate {sample_rate_hz} Hz "
                         f"and a {window}-sample window into whole frames")
    return round(spf)


def _item(store, row: int, start: int, window: int, spf: int | None, reduce: str) -> dict:
    x, y, valid, present = store.window(row, start, window)
    if spf is not None:
        y = frame_labels(y, spf, reduce)
        valid = valid[::spf]
    return {
        "x": torch.from_numpy(x),
        "y": torch.from_numpy(y.astype(np.float32)),
        "valid": torch.from_numpy(np.ascontiguousarray(valid)),
        "present": torch.from_numpy(present),
        "row": row,
        "start": start,
    }


class TrainingWindowDataset(Dataset):
    """Map-style dataset indexed by the (row, start) pairs a `TrainingWindowSampler` yields."""

    def __init__(self, store, window_s: float = 60.0, frame_rate_hz: float | None = None,
                 label_reduce: str = "any"):
        self.store = store
        self.window = round(window_s * store.sample_rate_hz)
        self.samples_per_frame = samples_per_frame(store.sample_rate_hz, frame_rate_hz, self.window)
        self.label_reduce = label_reduce

    def __getitem__(self, item: tuple[int, int]) -> dict:
        row, start = item
        return _item(self.store, int(row), int(start), self.window, self.samples_per_frame, self.label_reduce)


class InferenceWindowDataset(Dataset):
    """Every window of an `InferenceWindows`, in its order (stitch the outputs with it)."""

    def __init__(self, windows: InferenceWindows, frame_rate_hz: float | None = None, label_reduce: str = "any"):
        self.windows = windows
        self.store = windows.store
        self.samples_per_frame = samples_per_frame(self.store.sample_rate_hz, frame_rate_hz, windows.window)
        self.label_reduce = label_reduce

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        row, start = self.windows[index]
        item = _item(self.store, row, start, self.windows.window, self.samples_per_frame, self.label_reduce)
        item["index"] = int(index)
        return item


def dataloader_kwargs(hardware: HardwareConfig) -> dict:
    """DataLoader settings of a hardware profile. persistent_workers and prefetch_factor exist only
    with worker processes: torch rejects them when num_workers is 0."""
    kwargs: dict = {"num_workers": hardware.num_workers, "pin_memory": hardware.pin_memory}
    if hardware.num_workers > 0:
        kwargs["persistent_workers"] = hardware.persistent_workers
        if hardware.prefetch_factor is not None:
            kwargs["prefetch_factor"] = hardware.prefetch_factor
    return kwargs


def make_dataloader(dataset, hardware: HardwareConfig, batch_size: int, shuffle: bool = False, sampler=None,
                    drop_last: bool = False, **extra) -> DataLoader:
    """A DataLoader honouring the profile's num_workers, pin_memory, persistent_workers and
    prefetch_factor. `extra` goes to DataLoader as is (collate_fn, generator, worker_init_fn...)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last,
                      **dataloader_kwargs(hardware), **extra)
