"""Test doubles for the remote path, importable by pytest and by the container subprocess (tests/ is
put on its PYTHONPATH):

- `dummy_stage`, `ddp_probe`: core stage functions steered by environment variables, so the same
  function can succeed, fail, or be "preempted" once;
- `arm_preemption`: kills a container running the real train stage at a chosen moment (after a
  checkpoint reached the volume, or in the middle of writing the final checkpoint), like a
  preempted Modal container, steered by SZFLOW_PREEMPT / SZFLOW_PREEMPT_DIR;
- `LoopbackVolumeStore`, `LoopbackRunner`, `loopback_executor`: the remote executor with a local
  folder as the volume and a subprocess (`python -m _remote_fixture`) as the container, which runs
  the real `szflow.remote.container.run_job`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import torch
import torch.distributed as dist

import szflow
from szflow import layout
from szflow.config import Params
from szflow.errors import SzflowError
from szflow.io_utils import atomic_path, atomic_write_json, atomic_write_text
from szflow.remote.container import run_job
from szflow.remote.executor import RemoteExecutor
from szflow.remote.store import blob_path, run_dir, sha256_file
from szflow.train import trainer as trainer_module
from szflow.train.distributed import dist_info

log = logging.getLogger("szflow.remote")

# Environment variables a container never needs; stripped from the subprocess so a secret cannot
# leak into what the stage writes.
CLIENT_ONLY_ENV = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
SOURCE_ROOT = Path(szflow.__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- core functions
def dummy_stage(params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    calls = os.environ.get("SZFLOW_DUMMY_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as handle:
            handle.write("call\n")
    if os.environ.get("SZFLOW_DUMMY_FAIL"):
        raise RuntimeError("dummy stage failed on purpose")

    last = workdir / "models/last.pt"
    resumed_from = json.loads(last.read_text())["step"] if last.exists() else 0
    marker = os.environ.get("SZFLOW_DUMMY_PREEMPT_MARKER")
    if marker and not Path(marker).exists():
        # First attempt: checkpoint, give the resume sync time to copy it, then die like a
        # preempted container (no cleanup, no exception handling).
        atomic_write_json(last, {"step": 7})
        time.sleep(1.0)
        Path(marker).write_text("preempted")
        os._exit(137)

    inputs = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "data/cache/dummy").rglob("*")
                    if p.is_file())
    total = sum(len((workdir / p).read_bytes()) for p in inputs)
    config = json.loads((workdir / "models/in.json").read_text())
    atomic_write_json(last, {"step": max(resumed_from, 0) + 10})
    preds = workdir / "out/preds"
    preds.mkdir(parents=True, exist_ok=True)
    for name in ("a", "b"):
        atomic_write_text(preds / f"{name}.csv_bi", f"{name},{total},{config['tag']}\n")
    summary = {"inputs": inputs, "bytes": total, "tag": config["tag"], "resumed_from": resumed_from,
               "hw": params.hw, "root_is_workdir": Path(params.root).resolve() == workdir.resolve()}
    atomic_write_json(workdir / "out/result.json", summary)
    return summary


def ddp_probe(params, workdir: Path = Path(".")) -> dict:
    """Run by each torchrun rank: proves the ranks form one process group."""
    info = dist_info()
    total = torch.tensor([float(info.rank + 1)])
    dist.all_reduce(total)
    return {"world_size": dist.get_world_size(), "rank": info.rank, "sum": float(total.item()),
            "hw": params.hw}


# ----------------------------------------------------------------------------- preemption of the real train stage
PREEMPTED_EXIT = 137  # what a SIGKILLed container reports


def _preempt(marker: Path) -> None:
    """Die like a preempted container: no cleanup, no exception handling, no final sync."""
    marker.write_text("preempted\n", encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(PREEMPTED_EXIT)


def _wait_until_on_volume(local: Path, on_volume: Path, timeout_s: float = 300.0) -> None:
    """Block until the resume sync has put `local`'s current content at `on_volume`."""
    deadline = time.monotonic() + timeout_s
    digest = sha256_file(local)
    while time.monotonic() < deadline:
        if on_volume.is_file() and sha256_file(on_volume) == digest:
            return
        time.sleep(0.05)
    raise SzflowError(f"{local} did not reach the volume within {timeout_s} s")


def arm_preemption(job: dict, volume_root: Path) -> None:
    """Arm the first preemption of SZFLOW_PREEMPT (comma-separated) that has not fired yet.

    - `after-step:N`: once the checkpoint of step N (and the best.pt of that step's validation) is
      on the volume, the container dies: the retry must resume from it and still finish.
    - `final-write`: once the previous checkpoint is on the volume, the container dies half-way
      through writing the final last.pt (a temporary file is left behind, nothing is renamed): the
      retry resumes from the previous checkpoint.
    Fired events are remembered as files in SZFLOW_PREEMPT_DIR, so each fires in one attempt only.
    """
    events = [e for e in os.environ.get("SZFLOW_PREEMPT", "").split(",") if e]
    if not events:
        return
    markers = Path(os.environ["SZFLOW_PREEMPT_DIR"])
    pending = [e for e in events if not (markers / e.replace(":", "-")).exists()]
    if not pending:
        return
    event, marker = pending[0], markers / pending[0].replace(":", "-")
    state = volume_root / run_dir(job["stage"], job["run_key"]) / "state"
    trainer_class = trainer_module.Trainer
    if event.startswith("after-step:"):
        target = int(event.partition(":")[2])
        save_last = trainer_class.save_last

        def save_last_then_preempt(self) -> None:
            save_last(self)
            if self.step == target:
                for rel in (layout.LAST_CHECKPOINT, layout.BEST_CHECKPOINT):
                    _wait_until_on_volume(self.paths.last.parent.parent / rel, state / rel)
                _preempt(marker)

        trainer_class.save_last = save_last_then_preempt
    elif event == "final-write":
        save_checkpoint = trainer_module.save_checkpoint
        max_steps = Params.model_validate(job["params"]).train.max_steps

        def save_checkpoint_or_preempt(path, **kwargs) -> None:
            if Path(path).name == layout.LAST_CHECKPOINT.name and kwargs["step"] == max_steps:
                # The previous checkpoint reaches the volume first, as it would over a long run, so
                # the retry resumes from it (without this wait it depends on the sync's timing).
                _wait_until_on_volume(Path(path), state / layout.LAST_CHECKPOINT)
                with atomic_path(path) as tmp:
                    tmp.write_bytes(b"half a checkpoint")
                    _preempt(marker)
            save_checkpoint(path, **kwargs)

        trainer_module.save_checkpoint = save_checkpoint_or_preempt
    else:
        raise SzflowError(f"unknown preemption {event!r}")


# ----------------------------------------------------------------------------- loopback volume
class LoopbackVolumeStore:
    """A local folder playing the volume; counts uploads so tests can prove a second run uploads nothing."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads: list[str] = []

    def has(self, digest: str) -> bool:
        return (self.root / blob_path(digest)).is_file()

    def put(self, path: Path, digest: str) -> None:
        dest = self.root / blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:12]}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            # Blobs are immutable, as on Modal: a core function that wrote an input would fail.
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.uploads.append(digest)

    def put_many(self, items: Sequence[tuple[Path, str]]) -> None:
        for path, digest in items:
            self.put(path, digest)

    def get(self, remote_path: str, local_path: Path) -> None:
        source = self.root / PurePosixPath(remote_path)
        if not source.is_file():
            raise FileNotFoundError(f"volume has no {remote_path}")
        shutil.copyfile(source, local_path)

    def commit(self) -> None:  # a local folder is always consistent
        pass

    def reload(self) -> None:
        pass


# ----------------------------------------------------------------------------- loopback container
class LoopbackRunner:
    """Runs the container code as a subprocess against a local volume folder.

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

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ONLY_ENV}
        env.update(self.extra_env)
        # The container imports szflow from the same source tree as this process, and this module.
        paths = (str(SOURCE_ROOT), str(Path(__file__).resolve().parent), env.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return env

    def run(self, job: dict) -> dict:
        with tempfile.TemporaryDirectory(prefix="szflow-loopback-") as tmp:
            # Like a container's local disk: the workdir is gone after the run unless asked to keep it.
            work_root = self.work_root or Path(tmp) / "work"
            job_file = Path(tmp) / "job.json"
            job_file.write_text(json.dumps(job), encoding="utf-8")
            cmd = [sys.executable, "-m", "_remote_fixture", "--volume", str(self.volume_root),
                   "--job", str(job_file), "--work", str(work_root),
                   "--sync-interval", str(self.sync_interval_s)]
            for attempt in range(self.retries + 1):
                self.attempts += 1
                proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, check=False,
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


def loopback_executor(workdir: str | Path, volume_root: str | Path, **runner_options) -> RemoteExecutor:
    """The remote executor with a local folder as the volume and a subprocess as the container."""
    return RemoteExecutor(workdir, LoopbackVolumeStore(volume_root), LoopbackRunner(volume_root, **runner_options))


def container_main(argv: list[str] | None = None) -> int:
    """One container: run a job file against a volume folder (what a Modal function body does)."""
    parser = argparse.ArgumentParser(prog="python -m _remote_fixture")
    parser.add_argument("--volume", required=True, type=Path)
    parser.add_argument("--job", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--sync-interval", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    job = json.loads(args.job.read_text(encoding="utf-8"))
    arm_preemption(job, args.volume)
    try:
        run_job(job, args.volume, args.work, sync_interval_s=args.sync_interval)
    except SzflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(container_main())
