"""Executors: run a stage's core function here or in a remote container, leaving the same outputs
in the same paths. A stage script only calls `run_stage(name, params)`.

The remote path is the same for Modal and for the loopback setup the tests use; only the two
pieces behind small interfaces differ:
  - a `VolumeStore` (has/put/get/commit/reload) that holds content-addressed inputs and outputs,
  - a `ContainerRunner` (run(job) -> result) that executes `szflow.remote.container.run_job`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from szflow.errors import SzflowError
from szflow.remote.credentials import require_modal_token
from szflow.remote.stages import StageSpec, get_stage, stage_paths
from szflow.remote.store import (
    JOB_VERSION,
    HashCache,
    LoopbackVolumeStore,
    VolumeStore,
    check_digest,
    manifest,
    run_dir,
)

if TYPE_CHECKING:
    from szflow.config import Params

log = logging.getLogger("szflow.remote")

# Environment variables a container never needs; stripped from the loopback subprocess so a
# secret cannot leak into what the stage writes.
_CLIENT_ONLY_ENV = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")


class Executor(Protocol):
    def run(self, stage: str, inputs: list[Path], outputs: list[Path], params: Params) -> dict: ...


class ContainerRunner(Protocol):
    def run(self, job: dict) -> dict: ...


def _check_inputs(workdir: Path, stage: str, inputs: Sequence[Path]) -> None:
    missing = [str(p) for p in inputs if not (workdir / p).exists()]
    if missing:
        raise SzflowError(
            f"stage {stage}: input(s) not built yet: {', '.join(missing)} "
            f"(run the earlier stages first, e.g. `dvc repro {stage}`)"
        )


class LocalExecutor:
    """Calls the core function in this process; it writes its outputs itself."""

    def __init__(self, workdir: str | Path = "."):
        self.workdir = Path(workdir)

    def run(self, stage: str, inputs: list[Path], outputs: list[Path], params: Params) -> dict:
        spec = get_stage(stage)
        _check_inputs(self.workdir, stage, inputs)
        result = spec.resolve()(params, self.workdir)
        missing = [str(p) for p in outputs if not (self.workdir / p).exists()]
        if missing:
            raise SzflowError(f"stage {stage} did not write its declared output(s): {', '.join(missing)}")
        return result


@dataclass
class TransferStats:
    uploaded: int = 0
    skipped: int = 0
    uploaded_bytes: int = 0
    downloaded: int = 0
    run_key: str = ""
    files: list[str] = field(default_factory=list)


class LoopbackRunner:
    """Runs the container code as a subprocess against a local volume folder (tests, dry runs).

    `retries` mimics `modal.Retries`: a failed container is started again with the same job, so a
    resume from the volume's last.pt can be tested.
    """

    def __init__(self, volume_root: str | Path, work_root: str | Path | None = None, retries: int = 0,
                 sync_interval_s: float = 0.2, env: dict[str, str] | None = None, timeout_s: float = 600):
        self.volume_root = Path(volume_root)
        self.work_root = Path(work_root) if work_root else None
        self.retries = retries
        self.sync_interval_s = sync_interval_s
        self.extra_env = env or {}
        self.timeout_s = timeout_s
        self.attempts = 0
        self.logs: list[str] = []

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ONLY_ENV}
        env.update(self.extra_env)
        # The container imports szflow from the same source tree as this process.
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
        return env

    def run(self, job: dict) -> dict:
        with tempfile.TemporaryDirectory(prefix="szflow-loopback-") as tmp:
            # Like a container's local disk: the workdir is gone after the run unless asked to keep it.
            work_root = self.work_root or Path(tmp) / "work"
            job_file = Path(tmp) / "job.json"
            job_file.write_text(json.dumps(job), encoding="utf-8")
            cmd = [sys.executable, "-m", "szflow.remote.container", "--volume", str(self.volume_root),
                   "--job", str(job_file), "--work", str(work_root),
                   "--sync-interval", str(self.sync_interval_s)]
            for attempt in range(self.retries + 1):
                self.attempts += 1
                proc = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, check=False,
                                      timeout=self.timeout_s)
                self.logs.append(proc.stdout + proc.stderr)
                if proc.returncode == 0:
                    break
                log.warning("container attempt %d for %s failed (exit %d)", attempt + 1, job["stage"],
                            proc.returncode)
            else:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise SzflowError(f"remote stage {job['stage']} failed after {self.retries + 1} attempt(s):\n{tail}")
        result_file = self.volume_root / run_dir(job["stage"], job["run_key"]) / "result.json"
        return json.loads(result_file.read_text(encoding="utf-8"))


def code_fingerprint(function: str) -> str:
    """sha256 of the szflow sources (what the image runs) and of the stage function's module when
    it lives elsewhere. Part of the job key: changed code must never be answered with the outputs
    of an earlier run that is still on the volume."""
    import importlib.util

    import szflow

    package = Path(szflow.__file__).resolve().parent
    # Names relative to the package, so the key is the same on every machine with the same code.
    files = {p.relative_to(package.parent).as_posix(): p for p in sorted(package.rglob("*.py"))}
    spec = importlib.util.find_spec(function.partition(":")[0])
    if spec is not None and spec.origin and Path(spec.origin).suffix == ".py":
        origin = Path(spec.origin).resolve()
        if package not in origin.parents:
            files[f"<{spec.name}>"] = origin
    digest = hashlib.sha256()
    for name, file in files.items():
        digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def job_fingerprint(job: dict) -> str:
    """Stable key of a job: stage, function, code, params and input contents."""
    payload = {k: job[k] for k in ("version", "stage", "function", "code", "params", "inputs", "outputs")}
    payload["params"] = {k: v for k, v in job["params"].items() if k != "root"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def build_job(spec: StageSpec, params: Params, inputs: list[dict], outputs: Sequence[Path]) -> dict:
    job = {
        "version": JOB_VERSION,
        "stage": spec.name,
        "function": spec.function,
        "code": code_fingerprint(spec.function),
        # Params hold no secrets (keys come from the environment / Modal Secrets only).
        "params": params.model_dump(mode="json"),
        "inputs": inputs,
        "outputs": [p.as_posix() for p in outputs],
        "resume_files": list(spec.resume_files),
        "distributed": spec.distributed,
    }
    job["run_key"] = job_fingerprint(job)
    return job


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


class RemoteExecutor:
    """Upload inputs by content hash, run the job in a container, download the outputs atomically."""

    def __init__(self, workdir: str | Path, store: VolumeStore, runner: ContainerRunner):
        self.workdir = Path(workdir)
        self.store = store
        self.runner = runner
        self.last = TransferStats()

    def _prepare(self) -> None:
        """Hook for checks that must come before any work (ModalExecutor: the token)."""

    def run(self, stage: str, inputs: list[Path], outputs: list[Path], params: Params) -> dict:
        self._prepare()
        spec = get_stage(stage)
        _check_inputs(self.workdir, stage, inputs)
        config = [p for p in spec.config_inputs if (self.workdir / p).exists()]
        hashes = HashCache(self.workdir)
        entries = manifest(self.workdir, [p.as_posix() for p in inputs] + config, hashes)
        stats = TransferStats(files=[e["path"] for e in entries])
        self.store.reload()
        pending: list[tuple[Path, str]] = []
        seen: set[str] = set()
        for entry in entries:
            if entry["sha256"] in seen or self.store.has(entry["sha256"]):
                stats.skipped += 1
                continue
            seen.add(entry["sha256"])
            pending.append((self.workdir / entry["path"], entry["sha256"]))
            stats.uploaded_bytes += entry["size"]
        self.store.put_many(pending)
        stats.uploaded = len(pending)
        job = build_job(spec, params, entries, outputs)
        stats.run_key = job["run_key"]
        log.info("stage %s: uploaded %d file(s) (%d bytes), %d already on the volume; run %s",
                 stage, stats.uploaded, stats.uploaded_bytes, stats.skipped, job["run_key"])
        result = self.runner.run(job)
        self.store.reload()
        stats.downloaded = download_outputs(self.store, result, outputs, self.workdir)
        self.last = stats
        log.info("stage %s: downloaded %d output file(s)", stage, stats.downloaded)
        return result["result"]


class ModalExecutor(RemoteExecutor):
    """The remote executor on Modal. The token is checked before anything else: without one the
    error comes within milliseconds and the workspace is untouched (nothing hashed or written)."""

    def __init__(self, workdir: str | Path = ".", params: Params | None = None):
        # Store and runner are built in _prepare, after the token check: building them is cheap,
        # but nothing Modal-related should happen before the user is told a token is missing.
        super().__init__(workdir, store=None, runner=None)  # type: ignore[arg-type]
        self._params = params

    def _prepare(self) -> None:
        require_modal_token()
        if self.store is None:
            if self._params is None:
                raise SzflowError("ModalExecutor needs params to build the Modal app")
            from szflow.remote.modal_app import ModalRunner, build_app
            from szflow.remote.store import ModalVolumeStore

            remote = build_app(self._params)
            self.store = ModalVolumeStore(remote.volume)
            self.runner = ModalRunner(remote, self.workdir)

    def run(self, stage: str, inputs: list[Path], outputs: list[Path], params: Params) -> dict:
        self._params = self._params or params
        return super().run(stage, inputs, outputs, params)


def loopback_executor(workdir: str | Path, volume_root: str | Path, **runner_options) -> RemoteExecutor:
    """The remote path with a local folder as the volume and a subprocess as the container."""
    return RemoteExecutor(workdir, LoopbackVolumeStore(volume_root), LoopbackRunner(volume_root, **runner_options))


def get_executor(params: Params, workdir: str | Path = ".") -> Executor:
    executor = params.hardware.executor
    if executor == "local":
        return LocalExecutor(workdir)
    if executor == "modal":
        return ModalExecutor(workdir, params)
    raise SzflowError(f"params/{params.hw}.yaml: key 'hardware.executor': unknown executor {executor!r}")


def run_stage(stage: str, params: Params, workdir: str | Path = Path(".")) -> dict:
    """Run a GPU stage with the executor of the active profile. Called by stages/{train,dev,eval}.py."""
    inputs, outputs = stage_paths(stage)
    return get_executor(params, workdir).run(stage, inputs, outputs, params)
