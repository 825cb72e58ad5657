"""What runs inside the remote container: build a workdir from the volume, run the core function,
write the outputs back to the volume.

`run_job` takes the volume as a folder and its commit/reload as functions: in a Modal container the
volume is mounted at /vol and they are `volume.commit`/`volume.reload`; the tests run it in a
subprocess against a local folder. The workdir lives on local disk,
not on the volume: inputs are symlinked from the content-addressed blobs, and only the resume state
(last.pt with what a resumed run cannot recreate: best.pt, the training curves) is copied to the
volume while the stage runs, so a retried container after a preemption finds the newest checkpoint
and its companions, and the core function resumes from them and finishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from szflow.config import Params
from szflow.errors import SzflowError
from szflow.inference import resolve_device, resolve_precision
from szflow.io_utils import atomic_write_text, jsonable, remove_stale_temporaries
from szflow.model.blocks import resolve_mamba_impl
from szflow.remote.ddp import run_distributed
from szflow.remote.specs import resolve_function
from szflow.remote.store import JOB_VERSION, blob_path, iter_files, run_dir, sha256_file

log = logging.getLogger("szflow.remote")


def _noop() -> None:
    pass


def _copy_to_temp(src: Path, dest: Path) -> Path:
    """Copy `src` to a temporary file beside `dest` on the volume; the caller renames it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy within the volume so that a reader (or a preempted writer) never leaves half a file."""
    os.replace(_copy_to_temp(src, dest), dest)


Signature = tuple[int, int, int]


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ResumeSync:
    """Copy the resume state (last.pt, best.pt, the curves) to the volume whenever it changes, and commit.

    `paths` are files or folders relative to the workdir; the first is the checkpoint the run resumes
    from. The volume must never hold a checkpoint newer than the files that go with it (a last.pt
    whose selection names a best step that best.pt on the volume does not have yet would resume
    into a run that cannot write its best.pt), and Modal may commit the volume at any moment. So
    each pass reads the checkpoint first into a temporary file, then copies the other changed files
    (read later, hence at least as new; a resumed run trims curve rows after its checkpoint and
    rewrites best.pt identically if it is newer), and renames the checkpoint into place last.

    Polling keeps the train loop unaware of where it runs: it only has to write its checkpoints
    atomically (which it does for local runs anyway).
    """

    def __init__(self, workdir: Path, state_dir: Path, paths: list[str], commit: Callable[[], None],
                 interval_s: float):
        self.workdir = workdir
        self.state_dir = state_dir
        self.paths = paths
        self.commit = commit
        self.interval_s = interval_s
        self._seen: dict[str, Signature] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="szflow-resume-sync", daemon=True)
        self.syncs = 0

    def _files(self) -> list[str]:
        """The files under the resume paths now, the checkpoint first."""
        files: list[str] = []
        for rel in self.paths:
            root = self.workdir / rel
            if root.exists():
                files.extend(f.relative_to(self.workdir).as_posix() for f in iter_files(root))
        return files

    def start(self) -> None:
        # Temporaries of a pass that a preemption cut short; never read (restores skip *.tmp).
        remove_stale_temporaries(self.state_dir, recursive=True)
        for rel in self._files():
            signature = _signature(self.workdir / rel)
            if signature is not None:
                self._seen[rel] = signature  # restored from the volume: already there
        if self.paths:
            self._thread.start()

    def sync_once(self) -> bool:
        with self._lock:
            checkpoint = self.paths[0] if self.paths else None
            changed = [rel for rel in self._files()
                       if _signature(self.workdir / rel) not in (None, self._seen.get(rel))]
            if not changed:
                return False
            staged: tuple[Path, Path, str, Signature | None] | None = None
            try:
                if checkpoint in changed:
                    signature = _signature(self.workdir / checkpoint)
                    tmp = _copy_to_temp(self.workdir / checkpoint, self.state_dir / checkpoint)
                    staged = (tmp, self.state_dir / checkpoint, checkpoint, signature)
                for rel in changed:
                    if rel == checkpoint:
                        continue
                    src, dest = self.workdir / rel, self.state_dir / rel
                    before = _signature(src)
                    try:
                        tmp = _copy_to_temp(src, dest)
                    except FileNotFoundError:  # replaced between listing and copy: next pass
                        continue
                    os.replace(tmp, dest)
                    # A file rewritten during the copy (the curves' summary) is copied again next pass.
                    if _signature(src) == before and before is not None:
                        self._seen[rel] = before
                if staged is not None:
                    tmp, dest, rel, signature = staged
                    os.replace(tmp, dest)
                    staged = None
                    if signature is not None:
                        self._seen[rel] = signature
            finally:
                if staged is not None and staged[0].exists():
                    staged[0].unlink()
            self.commit()
            self.syncs += 1
            return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync_once()
            except Exception as exc:  # noqa: BLE001 - a failed sync must not kill training; the next retries
                log.warning("resume sync failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sync_once()


def build_workdir(job: dict, volume_root: Path, workdir: Path) -> None:
    """Fresh workdir: inputs as symlinks to blobs; the resume state copied from the volume when its
    checkpoint (the first resume path) is there."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    missing = []
    for entry in job["inputs"]:
        blob = volume_root / blob_path(entry["sha256"])
        if not blob.is_file():
            missing.append(entry["path"])
            continue
        dest = workdir / entry["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Symlinks, not copies: the training cache is tens of GB and is only read.
        dest.symlink_to(blob.resolve())
    if missing:
        raise SzflowError(f"volume lacks the uploaded content of {len(missing)} input file(s), e.g. {missing[0]}")
    state = volume_root / run_dir(job["stage"], job["run_key"]) / "state"
    paths = list(job.get("resume_files", []))
    if not paths or not (state / paths[0]).is_file():
        return
    for rel in paths:
        saved = state / rel
        if not saved.exists():
            continue
        for file in iter_files(saved):
            dest = workdir / file.relative_to(state)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest)
        log.info("resuming %s from the volume", rel)


def log_runtime(stage: str, params: Params) -> None:
    """One line per container start: which Mamba blocks and precision this stage runs with."""
    hw = params.hardware
    try:
        device = resolve_device(hw.device)
        impl = resolve_mamba_impl(hw.mamba_impl)
        precision = resolve_precision(hw.precision, device)
    except SzflowError as exc:  # the core function raises the same error with its context
        log.warning("stage %s: runtime not usable: %s", stage, exc)
        return
    name = "cpu" if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})"
    log.info("stage %s on %s: Mamba-2 blocks %s (hardware.mamba_impl: %s), precision %s "
             "(hardware.precision: %s)", stage, name, impl, hw.mamba_impl, precision, hw.precision)


def _call_core(job: dict, workdir: Path) -> dict:
    params = Params.model_validate({**job["params"], "root": str(workdir)})
    log_runtime(job["stage"], params)
    if job.get("distributed") and params.hardware.gpus > 1:
        return run_distributed(job["function"], params, workdir, nproc=params.hardware.gpus)
    fn = resolve_function(job["function"])
    # Core functions take `workdir`; the chdir covers any library that writes relative to the cwd.
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        return fn(params, workdir)
    finally:
        os.chdir(previous)


def _existing_result(result_path: Path, volume_root: Path) -> dict | None:
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for files in result.get("outputs", {}).values():
        for entry in files:
            if not (volume_root / entry["volume_path"]).is_file():
                return None
    return result


def run_job(job: dict, volume_root: str | Path, work_root: str | Path, *,
            commit: Callable[[], None] = _noop, reload: Callable[[], None] = _noop,
            sync_interval_s: float = 30.0) -> dict:
    """Run one stage job against a volume; return the result record also written to the volume."""
    if job.get("version") != JOB_VERSION:
        raise SzflowError(f"job version {job.get('version')!r} is not {JOB_VERSION}: client and image differ")
    volume_root = Path(volume_root)
    reload()  # see the blobs the client uploaded after this container mounted the volume
    run = volume_root / run_dir(job["stage"], job["run_key"])
    result_path = run / "result.json"
    done = _existing_result(result_path, volume_root)
    if done is not None:
        # An identical job already finished (e.g. the client lost the connection): no GPU time twice.
        log.info("stage %s run %s already complete on the volume", job["stage"], job["run_key"])
        return done

    workdir = Path(work_root) / job["run_key"]
    build_workdir(job, volume_root, workdir)
    sync = ResumeSync(workdir, run / "state", list(job.get("resume_files", [])), commit, sync_interval_s)
    sync.start()
    try:
        core_result = _call_core(job, workdir)
    finally:
        # Also on failure: the retry (preemption, crash) resumes from the newest checkpoint.
        sync.stop()

    out_root = run / "out"
    if out_root.exists():
        shutil.rmtree(out_root)
    outputs: dict[str, list[dict]] = {}
    for rel in job["outputs"]:
        source = workdir / rel
        if not source.exists():
            raise SzflowError(f"stage {job['stage']} did not write its declared output {rel}")
        files = []
        for file in iter_files(source):
            rel_file = file.relative_to(workdir).as_posix()
            dest = out_root / rel_file
            _copy_atomic(file, dest)
            files.append({
                "path": rel_file,
                "volume_path": dest.relative_to(volume_root).as_posix(),
                "sha256": sha256_file(dest),
                "size": dest.stat().st_size,
            })
        outputs[rel] = files
    result = {"stage": job["stage"], "run_key": job["run_key"], "result": jsonable(core_result),
              "outputs": outputs}
    # result.json last: its presence means every output above is complete on the volume.
    atomic_write_text(result_path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    commit()
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir)
    return result
