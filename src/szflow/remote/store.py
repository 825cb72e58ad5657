"""Content-addressed file store on a volume, behind one small interface.

Layout of the volume (a `modal.Volume`, or any folder that plays one):

    blobs/<aa>/<sha256>                    every uploaded input file, named by its content hash
    runs/<stage>/<run_key>/state/<path>    resume files (last.pt) synced while a stage runs
    runs/<stage>/<run_key>/out/<path>      the stage outputs, written once the stage succeeded
    runs/<stage>/<run_key>/result.json     the core function's summary + a manifest of the outputs

Naming blobs by content means an unchanged cache is uploaded once, whatever its local path or
mtime, and a half-finished upload never shadows a good file (a blob is either complete or absent).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from szflow.errors import SzflowError
from szflow.io_utils import atomic_write_json

# The job format shared by the client and the container image; a mismatch is refused.
JOB_VERSION = 1
_CHUNK = 8 << 20
# Hashes of big local files, keyed by (size, mtime_ns) so a 30 GB cache is hashed once per change.
# `.dvc/tmp` is git-ignored in a DVC repo.
HASH_CACHE = Path(".dvc/tmp/szflow-sha256.json")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def blob_path(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def run_dir(stage: str, run_key: str) -> str:
    return f"runs/{stage}/{run_key}"


def iter_files(root: Path) -> list[Path]:
    """Files under `root` (or `root` itself), sorted, skipping our own temp files."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))


class HashCache:
    """sha256 of local files, remembered by (size, mtime_ns) in a JSON file under `workdir`."""

    def __init__(self, workdir: Path, path: Path = HASH_CACHE):
        self.workdir = Path(workdir)
        self.path = self.workdir / path
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            self._entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._entries = {}

    def digest(self, rel: str) -> str:
        stat = (self.workdir / rel).stat()
        entry = self._entries.get(rel)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return entry[2]
        digest = sha256_file(self.workdir / rel)
        self._entries[rel] = [stat.st_size, stat.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        # Only inside a DVC project: creating .dvc/ elsewhere would make a folder look like one.
        if self._dirty and (self.workdir / ".dvc").is_dir():
            atomic_write_json(self.path, self._entries)
            self._dirty = False


def manifest(workdir: Path, paths: Iterable[str], hashes: HashCache | None = None) -> list[dict]:
    """[{path, sha256, size}] for every file under the given relative paths (files or folders)."""
    workdir = Path(workdir)
    hashes = hashes or HashCache(workdir)
    entries = []
    for rel in paths:
        for file in iter_files(workdir / rel):
            rel_file = file.relative_to(workdir).as_posix()
            entries.append({"path": rel_file, "sha256": hashes.digest(rel_file), "size": file.stat().st_size})
    hashes.save()
    return entries


class VolumeStore(Protocol):
    """What the client needs from a volume. Paths are POSIX paths relative to the volume root."""

    def has(self, digest: str) -> bool: ...

    def put(self, path: Path, digest: str) -> None: ...

    def put_many(self, items: Sequence[tuple[Path, str]]) -> None: ...

    def get(self, remote_path: str, local_path: Path) -> None: ...

    def commit(self) -> None: ...

    def reload(self) -> None: ...


class ModalVolumeStore:
    """The client side of a `modal.Volume` (needs a token: every call talks to Modal)."""

    def __init__(self, volume: Any):
        self.volume = volume
        self._known: set[str] | None = None
        self.uploads: list[str] = []

    def _list_blobs(self) -> set[str]:
        from modal.exception import NotFoundError

        try:
            entries = self.volume.listdir("blobs", recursive=True)
        except (FileNotFoundError, NotFoundError):
            return set()
        return {PurePosixPath(entry.path).name for entry in entries}

    def has(self, digest: str) -> bool:
        # One listing per client run instead of one round trip per file.
        if self._known is None:
            self._known = self._list_blobs()
        return digest in self._known

    def put(self, path: Path, digest: str) -> None:
        self.put_many([(path, digest)])

    def put_many(self, items: Sequence[tuple[Path, str]]) -> None:
        if not items:
            return
        # One batch: Modal commits it as a whole when the block exits without an error.
        with self.volume.batch_upload(force=True) as batch:
            for path, digest in items:
                batch.put_file(str(path), "/" + blob_path(digest))
        if self._known is not None:
            self._known.update(digest for _, digest in items)
        self.uploads.extend(digest for _, digest in items)

    def get(self, remote_path: str, local_path: Path) -> None:
        with open(local_path, "wb") as handle:
            self.volume.read_file_into_fileobj(remote_path, handle)

    def commit(self) -> None:
        # Client-side uploads are committed by batch_upload; commit() is a container-side call.
        pass

    def reload(self) -> None:
        self._known = None


def check_digest(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise SzflowError(f"{what}: downloaded content has sha256 {actual[:12]}..., expected {expected[:12]}...")


def download_outputs(store: VolumeStore, result: dict, outputs: Sequence[Path], workdir: Path,
                     extra: dict[str, dict[str, bytes]] | None = None) -> int:
    """Bring every output into its DVC path, all or nothing.

    Phase 1 downloads each output into a hidden temp file/folder beside its destination and checks
    its sha256; only when every output is complete does phase 2 rename them into place (old ones
    are moved aside first and restored if a rename fails). A failure at any point removes the temp
    files and leaves the previous outputs as they were. `extra` adds small files the client made
    itself to a folder output ({output: {name: bytes}}), swapped in with the rest.
    """
    extra = extra or {}
    staged: list[tuple[Path, Path]] = []  # (temp, destination)
    count = 0
    try:
        for out in outputs:
            key = out.as_posix()
            files = result.get("outputs", {}).get(key)
            if files is None:
                raise SzflowError(f"remote result lacks declared output {key}")
            dest = workdir / out
            dest.parent.mkdir(parents=True, exist_ok=True)
            single = len(files) == 1 and files[0]["path"] == key
            if single:
                fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
                os.close(fd)
            else:
                tmp_name = tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            tmp = Path(tmp_name)
            staged.append((tmp, dest))
            for entry in files:
                target = tmp if single else tmp / Path(entry["path"]).relative_to(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                store.get(entry["volume_path"], target)
                check_digest(target, entry["sha256"], entry["path"])
                count += 1
            for name, data in extra.get(key, {}).items():
                (tmp / name).write_bytes(data)
        _swap_into_place(staged)
        staged = []
    finally:
        for tmp, _ in staged:
            _remove(tmp)
    return count


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _swap_into_place(staged: list[tuple[Path, Path]]) -> None:
    backups: list[tuple[Path, Path]] = []  # (backup, destination)
    placed: list[Path] = []
    try:
        for tmp, dest in staged:
            if dest.exists() or dest.is_symlink():
                backup = dest.with_name(f".{dest.name}.old.tmp")
                _remove(backup)
                os.replace(dest, backup)
                backups.append((backup, dest))
            os.replace(tmp, dest)
            placed.append(dest)
    except BaseException:
        for dest in placed:
            _remove(dest)
        for backup, dest in backups:
            os.replace(backup, dest)
        raise
    for backup, _ in backups:
        _remove(backup)
