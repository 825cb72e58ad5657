"""Deliberately broken files: the ways real corpus files fail, so the pipeline's skip path is tested.

Each function damages a file written correctly just before and returns the reason, in words,
that `broken_files.json` records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from szflow.data.annotations import Annotation
from szflow.io_utils import atomic_write_bytes

# Byte ranges of two numeric fields of the fixed EDF header.
_HEADER_BYTES_FIELD = slice(184, 192)
_N_RECORDS_FIELD = slice(236, 244)


def truncate(path: Path, rng: np.random.Generator) -> str:
    """Cut the data part short (as an interrupted copy does), mid-record."""
    raw = path.read_bytes()
    header = int(raw[_HEADER_BYTES_FIELD].decode("ascii"))
    keep = header + int((len(raw) - header) * rng.uniform(0.3, 0.8)) | 1
    atomic_write_bytes(path, raw[:keep])
    return f"truncated EDF: {keep} of {len(raw)} bytes kept"


def corrupt_header(path: Path, rng: np.random.Generator, variant: int) -> str:
    """Garbage in a numeric header field (variant 0) or a header size that does not match (1)."""
    raw = bytearray(path.read_bytes())
    if variant % 2 == 0:
        garbage = "".join(rng.choice(list("x?#!q"), size=3)) + "1"
        raw[_N_RECORDS_FIELD] = garbage.ljust(8).encode("ascii")
        reason = f"bad EDF header: number of data records field holds {garbage!r}"
    else:
        size = int(raw[_HEADER_BYTES_FIELD].decode("ascii")) + 256
        raw[_HEADER_BYTES_FIELD] = str(size).ljust(8).encode("ascii")
        reason = f"bad EDF header: header size field says {size} bytes, 256 more than its signals need"
    atomic_write_bytes(path, bytes(raw))
    return reason


def stretch_annotation(ann: Annotation, rng: np.random.Generator) -> tuple[Annotation, str]:
    """The annotation claims a different duration than the EDF holds (a mismatched pair)."""
    delta = float(rng.integers(15, 121))
    wrong = dataclasses.replace(ann, duration_s=ann.duration_s + delta)
    return wrong, (f".csv_bi duration {wrong.duration_s:g} s disagrees with the EDF's "
                   f"{ann.duration_s:g} s")
