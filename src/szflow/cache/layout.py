"""File names and format constants of the cache, shared by the builder and the reader."""

from __future__ import annotations

from szflow.config import ELECTRODES

# Bumped when the files change meaning; a reader refuses a cache of another version.
FORMAT_VERSION = 2
SIGNALS_NAME = "signals.npy"
LABELS_NAME = "labels.npy"
INDEX_NAME = "index.parquet"
MANIFEST_NAME = "manifest.json"
N_CHANNELS = len(ELECTRODES)
SIGNAL_DTYPE = "float16"
LABEL_DTYPE = "uint8"
# One contiguous (channels, total_samples) array per split: a window is 19 row slices, each one
# contiguous run of samples, that convert to the (19, n) float32 network input without a
# transpose (transposing a sample-major float16 block costs 3x more than the read; see
# docs/preprocessing.md).
LAYOUT = (f"signals.npy: float16 ({N_CHANNELS}, total_samples) channel-major; "
          "labels.npy: uint8 (total_samples,)")
INDEX_COLUMNS = [
    "recording_id", "split", "patient", "session", "montage", "offset", "length", "duration_s",
    "sample_rate_hz", "n_seizures", "seizure_s", "seizure_intervals", "seizure_types", "present", "offset_s",
]
