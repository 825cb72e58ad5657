"""What runs inside the remote container: build a workdir from the volume, run the core function,
write the outputs back to the volume.

`run_job` takes the volume as a folder and its commit/reload as functions: in a Modal container the
volume is mounted at /vol and they are `volume.commit`/`volume.reload`; the tests run it in a
subprocess against a local folder. The workdir lives on local disk,
not on the volume: inputs are symlinked from the content-addressed blobs, and only the resume files
(last.pt) are copied to the volume while the stage runs, so a retried container after a preemption
finds the newest checkpoint and the core function resumes from it.
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
from szflow.io_utils import atomic_write_text, jsonable
from szflow.model.blocks import resolve_mamba_impl
from szflow.remote.ddp import run_distributed
from szflow.remote.specs import resolve_function
from szflow.remote.store import JOB_VERSION, blob_path, iter_files, run_dir, sha256_file

log = logging.getLogger("szflow.remote")


def _noop() -> None:
    pass


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy within the volume so that a reader (or a preempted writer) never leaves half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ResumeSync:
    """Copy resume files (last.pt) to the volume whenever they change, and commit.

    Polling keeps the train loop unaware of where it runs: it only has to write last.pt atomically
    (which it does for local runs anyway).
    """

    def __init__(self, workdir: Path, state_dir: Path, files: list[str], commit: Callable[[], None],
                 interval_s: float):
        self.workdir = workdir
        self.state_dir = state_dir
        self.files = files
        self.commit = commit
        self.interval_s = interval_s
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="szflow-resume-sync", daemon=True)
        self.syncs = 0

    def start(self) -> None:
        for rel in self.files:
            self._seen[rel] = self._signature(self.workdir / rel)
        if self.files:
            self._thread.start()

    @staticmethod
    def _signature(path: Path) -> tuple[int, int, int]:
        try:
            st = path.stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def sync_once(self) -> bool:
        with self._lock:
            changed = False
            for rel in self.files:
                src = self.workdir / rel
                signature = self._signature(src)
                if signature == (0, 0, 0) or signature == self._seen.get(rel):
                    continue
                try:
                    _copy_atomic(src, self.state_dir / rel)
                except FileNotFoundError:  # replaced between stat and copy: next round
                    continue
                self._seen[rel] = signature
                changed = True
            if changed:
                self.commit()
                self.syncs += 1
            return changed

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
    """Fresh workdir: inputs as symlinks to blobs, resume files copied from the run's state."""
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
    for rel in job.get("resume_files", []):
        saved = state / rel
        if saved.is_file():
            dest = workdir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved, dest)
            log.info("resuming %s from the volume (%d bytes)", rel, saved.stat().st_size)


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
