"""Executors: run a GPU stage's core function here or in a remote container, leaving the same
outputs in the same paths. A stage driver only calls `run_stage(name, params)`.

The remote path needs two pieces behind small interfaces:
  - a `VolumeStore` (has/put/get/commit/reload) that holds content-addressed inputs and outputs,
  - a `ContainerRunner` (run(job) -> result) that executes `szflow.remote.container.run_job`.
Modal provides both (`ModalVolumeStore`, `ModalRunner`); the tests drive `RemoteExecutor` with a
local folder as the volume and a subprocess as the container.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import szflow
from szflow.config import Params
from szflow.errors import SzflowError
from szflow.remote.credentials import require_modal_token
from szflow.remote.modal_app import ModalRunner, build_app
from szflow.remote.plan import require_ready
from szflow.remote.specs import StageSpec, get_stage
from szflow.remote.store import (
    JOB_VERSION,
    HashCache,
    ModalVolumeStore,
    VolumeStore,
    download_outputs,
    manifest,
)

log = logging.getLogger("szflow.remote")


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


def code_fingerprint(function: str) -> str:
    """sha256 of the szflow sources (what the image runs) and of the stage function's module when
    it lives elsewhere. Part of the job key: changed code must never be answered with the outputs
    of an earlier run that is still on the volume."""
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
        self._preflight()
        if self.store is None:
            if self._params is None:
                raise SzflowError("ModalExecutor needs params to build the Modal app")
            # Client Python, image lock and the profile's Modal Secrets, before any upload.
            require_ready(self._params)
            remote = build_app(self._params)
            self.store = ModalVolumeStore(remote.volume)
            self.runner = ModalRunner(remote, self.workdir)

    def _preflight(self) -> None:
        """Every check that must pass before anything is hashed, uploaded or spawned (the one call
        site for them): a Modal token."""
        require_modal_token()

    def run(self, stage: str, inputs: list[Path], outputs: list[Path], params: Params) -> dict:
        self._params = self._params or params
        return super().run(stage, inputs, outputs, params)


def get_executor(params: Params, workdir: str | Path = ".") -> Executor:
    executor = params.hardware.executor
    if executor == "local":
        return LocalExecutor(workdir)
    if executor == "modal":
        return ModalExecutor(workdir, params)
    raise SzflowError(f"params/{params.hw}.yaml: key 'hardware.executor': unknown executor {executor!r}")


def run_stage(stage: str, params: Params, workdir: str | Path = Path(".")) -> dict:
    """Run a GPU stage with the executor of the active profile (szflow.stages.runner calls this)."""
    inputs, outputs = get_stage(stage).paths()
    return get_executor(params, workdir).run(stage, inputs, outputs, params)
