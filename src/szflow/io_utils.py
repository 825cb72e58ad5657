"""Atomic file writes: a reader (or a killed writer) never sees a half-written output."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("szflow.io")

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP_PREFIX, _TEMP_SUFFIX = ".", ".tmp"
# What `atomic_path` names its temporaries: .<target name>.<mkstemp's 8 random characters>.tmp
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; rename it over `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; outputs should get the usual permissions (0666 less the umask).
    os.chmod(tmp, 0o666 & ~_UMASK)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def jsonable(obj: Any) -> Any:
    """A summary as plain JSON values (numpy scalars and arrays, Paths, tuples...)."""

    def default(value: Any) -> Any:
        if hasattr(value, "item"):
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    return json.loads(json.dumps(obj, default=default))


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete the temporaries that killed writers left in `folder` (only names `atomic_path` makes).

    A SIGKILLed process cannot run its cleanup, so `.<name>.<random>.tmp` stays beside the output:
    a 240 MB one for a checkpoint. A stage calls this when it starts, before it writes anything;
    DVC runs one stage of a repository at a time, so no live writer owns them then.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = folder.rglob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}") if recursive else folder.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}")
    removed = []
    for path in sorted(candidates):
        if path.is_file() and _TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.warning("removed %d temporary file(s) left by an interrupted run in %s: %s", len(removed), folder,
                    ", ".join(p.name for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
    return removed
