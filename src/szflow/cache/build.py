"""Build the cache: per split one contiguous float16 signal array, a label array and an index.

Input: the `preprocess` stage's folder (`report.csv`, `manifest.json`, and per recording
`<split>/<id>.npy` (19, n) float16 plus `<split>/<id>.json`). Only recordings the report lists as
ok are included, in recording-id order. The arrays are streamed recording by recording into
preallocated files, so memory stays at one chunk whatever the corpus size. Every file is written
under a temporary name and renamed when complete; `manifest.json` comes last and marks the split
as complete. An existing cache built from other inputs is never deleted or overwritten: the build
refuses with a message saying what differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from szflow.cache.layout import (
    FORMAT_VERSION,
    INDEX_COLUMNS,
    INDEX_NAME,
    LABELS_NAME,
    LAYOUT,
    MANIFEST_NAME,
    N_CHANNELS,
    SIGNALS_NAME,
)
from szflow.cache.store import CacheError
from szflow.config import SPLITS
from szflow.data.edf import ELECTRODES
from szflow.io_utils import atomic_path, atomic_write_json, remove_stale_temporaries
from szflow.signal.jobs import MANIFEST_NAME as PRE_MANIFEST
from szflow.signal.jobs import REPORT_NAME
from szflow.signal.labels import seizure_mask

log = logging.getLogger("szflow.cache")

# Samples copied per write: 2^22 samples of one channel are 8 MB of float16.
CHUNK_SAMPLES = 1 << 22

INDEX_SCHEMA = pa.schema([
    ("recording_id", pa.string()),
    ("split", pa.string()),
    ("patient", pa.string()),
    ("session", pa.string()),
    ("montage", pa.string()),
    ("offset", pa.int64()),
    ("length", pa.int64()),
    ("duration_s", pa.float64()),
    ("sample_rate_hz", pa.float64()),
    ("n_seizures", pa.int64()),
    ("seizure_s", pa.float64()),
    ("seizure_intervals", pa.list_(pa.list_(pa.float64()))),
    ("seizure_types", pa.list_(pa.string())),
    # Electrodes present (read or reconstructed): 19 characters 0/1 in ELECTRODES order.
    ("present", pa.string()),
    # Onset in the EDF's time: 0 but for a later segment of an EDF+D file.
    ("offset_s", pa.float64()),
])
assert INDEX_SCHEMA.names == INDEX_COLUMNS


def _read_preprocess(preprocess_dir: Path) -> tuple[dict, pd.DataFrame]:
    manifest_path, report_path = preprocess_dir / PRE_MANIFEST, preprocess_dir / REPORT_NAME
    if not manifest_path.exists() or not report_path.exists():
        raise CacheError(f"{preprocess_dir}: no preprocess output ({PRE_MANIFEST}, {REPORT_NAME}); run the "
                         "preprocess stage first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    report = pd.read_csv(report_path, dtype={"recording_id": str, "split": str, "patient": str,
                                             "session": str, "montage": str})
    return manifest, report


def _recording_inputs(preprocess_dir: Path, split: str, recording_ids: list[str], params_hash: str
                      ) -> tuple[list[dict], str]:
    """Metadata of each recording (checked against its array), and a fingerprint of all inputs."""
    digest = hashlib.sha256(f"cache-format-{FORMAT_VERSION}|{params_hash}|{split}".encode())
    metas: list[dict] = []
    for rid in recording_ids:
        meta_path = preprocess_dir / split / f"{rid}.json"
        signal_path = preprocess_dir / split / f"{rid}.npy"
        try:
            text = meta_path.read_text(encoding="utf-8")
            meta = json.loads(text)
            array = np.load(signal_path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise CacheError(f"{meta_path}: listed as ok in the preprocess report but unreadable: {exc}; "
                             "re-run the preprocess stage") from None
        if meta.get("params_hash") != params_hash:
            raise CacheError(f"{meta_path}: preprocessed with params {meta.get('params_hash')}, but the "
                             f"preprocess folder's manifest says {params_hash}; re-run the preprocess stage")
        if array.shape != (N_CHANNELS, meta["n_samples"]) or array.dtype != np.float16:
            raise CacheError(f"{signal_path}: shape {array.shape} {array.dtype}, its metadata says "
                             f"({N_CHANNELS}, {meta['n_samples']}) float16; re-run the preprocess stage")
        digest.update(text.encode())
        digest.update(str(signal_path.stat().st_size).encode())
        metas.append(meta)
    return metas, digest.hexdigest()[:16]


def _check_existing(split_dir: Path, inputs: str, params_hash: str) -> bool:
    """True if a complete cache of exactly these inputs exists; CacheError if another one does."""
    manifest_path = split_dir / MANIFEST_NAME
    if not manifest_path.exists():
        # Leftovers of an interrupted build (no manifest) are not a cache: they are overwritten.
        return False
    try:
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        existing = {}
    if existing.get("inputs") == inputs and existing.get("format_version") == FORMAT_VERSION:
        return True
    raise CacheError(
        f"{split_dir} already holds a cache built from other inputs (format "
        f"{existing.get('format_version')}, preprocess params {existing.get('preprocess_params_hash')}, "
        f"inputs {existing.get('inputs')}; now: format {FORMAT_VERSION}, params {params_hash}, inputs "
        f"{inputs}). A cache is never deleted automatically: move or remove {split_dir} yourself, "
        "then run the cache stage again"
    )


def _write_rows(handle, data_offset: int, source: np.ndarray, total: int, offset: int) -> None:
    """Copy a (19, n) float16 recording into columns [offset, offset + n) of the (19, total) file."""
    n = source.shape[1]
    for channel in range(N_CHANNELS):
        for first in range(0, n, CHUNK_SAMPLES):
            chunk = source[channel, first: first + CHUNK_SAMPLES]
            handle.seek(data_offset + 2 * (channel * total + offset + first))
            handle.write(np.ascontiguousarray(chunk).data)


def _preallocate(path: Path, dtype, shape: tuple[int, ...]) -> int:
    """Create an .npy of the final size (sparse, not written) and return its header length."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    data_offset = int(array.offset)
    del array  # nothing touched: no page of it is resident
    return data_offset


def build_split(preprocess_dir: str | Path, cache_dir: str | Path, split: str, progress: bool = True) -> Path:
    """Build (or confirm up to date) `<cache_dir>/<split>`; returns that folder."""
    preprocess_dir, cache_dir = Path(preprocess_dir), Path(cache_dir)
    manifest, report = _read_preprocess(preprocess_dir)
    params_hash = str(manifest["params_hash"])
    rate = float(manifest["sample_rate_hz"])
    ok = report[(report["split"] == split) & (report["status"] == "ok")].sort_values("recording_id")
    metas, inputs = _recording_inputs(preprocess_dir, split, list(ok["recording_id"]), params_hash)
    split_dir = cache_dir / split
    if _check_existing(split_dir, inputs, params_hash):
        log.info("%s: cache up to date (%d recordings)", split_dir, len(metas))
        return split_dir
    split_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(split_dir)

    lengths = [int(m["n_samples"]) for m in metas]
    offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))[:-1].tolist() if metas else []
    total = int(sum(lengths))
    # Counted in samples (integers), shown in hours: summing float hours overshot the total by a
    # rounding error and tqdm warned "clamping frac to range [0, 1]".
    bar = tqdm(total=total, desc=f"cache {split}", unit="h", unit_scale=1.0 / (rate * 3600), disable=not progress,
               bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} h [{elapsed}<{remaining}]")
    with (atomic_path(split_dir / SIGNALS_NAME) as signals_tmp,
          atomic_path(split_dir / LABELS_NAME) as labels_tmp,
          atomic_path(split_dir / INDEX_NAME) as index_tmp):
        if total == 0:
            # numpy cannot memory-map an empty array: write the empty arrays directly.
            with open(signals_tmp, "wb") as handle:
                np.lib.format.write_array(handle, np.zeros((N_CHANNELS, 0), np.float16))
            with open(labels_tmp, "wb") as handle:
                np.lib.format.write_array(handle, np.zeros(0, np.uint8))
        else:
            signal_data = _preallocate(signals_tmp, np.float16, (N_CHANNELS, total))
            label_data = _preallocate(labels_tmp, np.uint8, (total,))
            with open(signals_tmp, "r+b") as signals_file, open(labels_tmp, "r+b") as labels_file:
                for meta, offset in zip(metas, offsets, strict=True):
                    # Plain file writes rather than a writable memmap: dirty mapped pages would
                    # count towards this process's memory until the whole split is flushed.
                    source = np.load(preprocess_dir / split / f"{meta['recording_id']}.npy", mmap_mode="r")
                    _write_rows(signals_file, signal_data, source, total, offset)
                    del source
                    mask = seizure_mask(meta["seizure_intervals"], int(meta["n_samples"]), rate)
                    labels_file.seek(label_data + offset)
                    labels_file.write(mask.data)
                    bar.update(int(meta["n_samples"]))
        table = pa.Table.from_pydict({
            "recording_id": [m["recording_id"] for m in metas],
            "split": [split] * len(metas),
            "patient": [str(m.get("patient", "")) for m in metas],
            "session": [str(m.get("session", "")) for m in metas],
            "montage": [str(m.get("montage", "")) for m in metas],
            "offset": offsets,
            "length": lengths,
            "duration_s": [float(m["duration_s"]) for m in metas],
            "sample_rate_hz": [rate] * len(metas),
            "n_seizures": [len(m["seizure_intervals"]) for m in metas],
            "seizure_s": [float(sum(b - a for a, b in m["seizure_intervals"])) for m in metas],
            "seizure_intervals": [[[float(a), float(b)] for a, b in m["seizure_intervals"]] for m in metas],
            "seizure_types": [list(m.get("seizure_types", [])) for m in metas],
            "present": [str(m["present"]) for m in metas],
            "offset_s": [float(m["offset_s"]) for m in metas],
        }, schema=INDEX_SCHEMA)
        pq.write_table(table, index_tmp)
    bar.close()
    bytes_on_disk = sum((split_dir / name).stat().st_size for name in (SIGNALS_NAME, LABELS_NAME, INDEX_NAME))
    hours = total / rate / 3600
    # Written last: a split without a manifest is an unfinished build, never read as a cache.
    atomic_write_json(split_dir / MANIFEST_NAME, {
        "format_version": FORMAT_VERSION,
        "split": split,
        "layout": LAYOUT,
        "preprocess_params_hash": params_hash,
        "sample_rate_hz": rate,
        "n_channels": N_CHANNELS,
        "channels": list(ELECTRODES),
        "n_recordings": len(metas),
        "total_samples": total,
        "hours": hours,
        "bytes": bytes_on_disk,
        "bytes_per_hour": bytes_on_disk / hours if hours else None,
        "inputs": inputs,
    })
    log.info("%s: %d recordings, %.2f h, %.1f MB", split_dir, len(metas), hours, bytes_on_disk / 1e6)
    return split_dir


def build_cache(preprocess_dir: str | Path, cache_dir: str | Path, splits: tuple[str, ...] | None = None,
                progress: bool = True) -> dict[str, Path]:
    """Build every split the preprocess report mentions (or `splits`); returns split -> folder."""
    _, report = _read_preprocess(Path(preprocess_dir))
    present = [s for s in SPLITS if s in set(report["split"])] if splits is None else list(splits)
    return {split: build_split(preprocess_dir, cache_dir, split, progress) for split in present}


def check_preprocess_params(preprocess_dir: str | Path, params_hash: str) -> None:
    """CacheError unless `preprocess_dir` was preprocessed with the params that hash to `params_hash`."""
    preprocess_dir = Path(preprocess_dir)
    manifest, _ = _read_preprocess(preprocess_dir)
    if manifest.get("params_hash") != params_hash:
        raise CacheError(f"{preprocess_dir} was preprocessed with params {manifest.get('params_hash')}, "
                         f"but params.yaml's preprocess section hashes to {params_hash}; re-run the "
                         "preprocess stage")
