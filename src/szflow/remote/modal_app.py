"""The Modal objects: App, Image, Volume, Secrets and the functions that run szflow stages.

Everything is built from the params by `build_app(params)` (the GPU, CPUs, memory, timeout and
retries come from the active hardware profile), so one App serves any profile. Building needs no
token: Modal objects are lazy until an app runs. The functions are registered with
`serialized=True` so their settings can come from the params instead of from import-time globals;
their bodies only import `szflow` (added to the image as local source) and call
`szflow.remote.container.run_job`, the same code the tests run in a subprocess.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from szflow.config import Params
from szflow.errors import ConfigError, SzflowError
from szflow.io_utils import atomic_write_json
from szflow.remote.container import run_job
from szflow.remote.specs import GPU_STAGES

log = logging.getLogger("szflow.remote")

APP_NAME = "szflow"
VOLUME_NAME = "szflow-cache"
VOLUME_MOUNT = "/vol"
WORK_ROOT = "/tmp/szflow-work"  # container-local disk: fast, and gone after a preemption (by design)
WANDB_SECRET = "wandb"
WANDB_KEYS = ("WANDB_API_KEY",)
# Keys each Modal Secret must hold, and the command that creates it.
SECRET_KEYS = {WANDB_SECRET: WANDB_KEYS}
SECRET_FIX = {
    WANDB_SECRET: "modal secret create wandb WANDB_API_KEY=<your W&B key>  "
                  "(or set hardware.wandb_mode: offline or disabled in params/<hw>.yaml)",
}
MODAL_MAX_TIMEOUT_S = 24 * 3600
# Seconds between copies of last.pt to the volume while training (each copy is one commit).
RESUME_SYNC_S = 60.0

# The image: Modal's debian_slim with a fixed Python, and every Python package from one lock file
# (src/szflow/remote/image-requirements.lock). No CUDA base image: torch's wheels bring the CUDA
# runtime libraries (cuBLAS, cuDNN, NCCL ...) and the mamba-ssm / causal-conv1d wheels in the lock
# are prebuilt for that torch, so nothing is compiled with nvcc. Triton (the Mamba-2 SSD kernels)
# compiles a small launcher with the system C compiler at its first kernel launch: hence gcc.
IMAGE_PYTHON = "3.11"
IMAGE_LOCK = Path(__file__).with_name("image-requirements.lock")
IMAGE_SPEC: dict[str, Any] = {
    "base": f"modal debian_slim (Python {IMAGE_PYTHON})",
    # Functions are registered serialized (cloudpickle): the client must run this same minor.
    "python": IMAGE_PYTHON,
    "apt": ["gcc"],
    "lock": "src/szflow/remote/image-requirements.lock",
    "local_source": "szflow",
}
KERNEL_PACKAGES = ("causal-conv1d", "mamba-ssm")


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def read_image_lock(path: Path = IMAGE_LOCK) -> dict[str, str]:
    """{canonical package name: "==version" or "@ url"} from the lock file (comments ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SzflowError(f"the Modal image lock {path} is missing ({exc}): reinstall szflow") from exc
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if " @ " in line:
            name, url = line.split(" @ ", 1)
            pins[_canonical(name)] = f"@ {url.strip()}"
        elif "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(name)] = f"=={version.strip()}"
        else:
            raise SzflowError(f"{path}: line {raw!r} is not pinned exactly (name==version or name @ url)")
    return pins


def image_summary() -> dict[str, Any]:
    """What the plan prints about the image: base, Python, torch and kernel pins."""
    pins = read_image_lock()
    return {
        "base": IMAGE_SPEC["base"], "python": IMAGE_PYTHON, "lock": IMAGE_SPEC["lock"],
        "torch": f"torch{pins.get('torch', ' (missing)')}",
        "cuda_kernels": [f"{name} {pins[name].rsplit('/', 1)[-1] if name in pins else '(missing)'}"
                         for name in KERNEL_PACKAGES],
        "packages": len(pins),
    }


@dataclass(frozen=True)
class FunctionSettings:
    """Settings of one Modal function, as plain data (the plan prints them; tests check them)."""

    name: str
    kind: str  # "gpu-stage" (the only kind: every function runs a GPU stage)
    gpu: str | None
    cpu: float
    memory_mb: int
    timeout_s: int
    retries: int
    volumes: dict[str, str] = field(default_factory=dict)  # mount point -> volume name
    secrets: tuple[str, ...] = ()


def gpu_string(gpu: str, gpus: int) -> str:
    return gpu if gpus == 1 else f"{gpu}:{gpus}"


def stage_cpu(params: Params) -> float:
    """Each data-loader worker needs a core, plus the main process and a spare for I/O. With DDP
    every rank has its own workers. Never below the profile's `cpus` (Modal's default is a fraction
    of one core, which starved the data loader in an earlier project)."""
    hardware = params.hardware
    return float(max(hardware.cpus, hardware.num_workers * hardware.gpus + 2))


def function_settings(params: Params) -> dict[str, FunctionSettings]:
    """Settings of every function the App defines for these params (no Modal import needed)."""
    hardware = params.hardware
    if not hardware.gpu:
        raise ConfigError(f"params/{params.hw}.yaml: key 'hardware.gpu': needed for Modal (e.g. A100-80GB)")
    if hardware.timeout_s > MODAL_MAX_TIMEOUT_S:
        raise ConfigError(
            f"params/{params.hw}.yaml: key 'hardware.timeout_s': {hardware.timeout_s} exceeds Modal's "
            f"limit of {MODAL_MAX_TIMEOUT_S} s (a longer training resumes from last.pt on the volume when the stage is run again)"
        )
    # Only `online` sends anything to W&B: `offline` and `disabled` need no key and no secret.
    wandb = (WANDB_SECRET,) if hardware.wandb_mode == "online" else ()
    settings = {}
    for spec in GPU_STAGES.values():
        settings[spec.modal_function_name] = FunctionSettings(
            name=spec.modal_function_name, kind="gpu-stage",
            gpu=gpu_string(hardware.gpu, hardware.gpus if spec.distributed else 1),
            cpu=stage_cpu(params), memory_mb=hardware.memory_mb, timeout_s=hardware.timeout_s,
            retries=hardware.retries, volumes={VOLUME_MOUNT: VOLUME_NAME},
            # Only training logs to W&B; with wandb_mode: disabled no secret is required at all.
            secrets=wandb if spec.name == "train" else (),
        )
    return settings


# ----------------------------------------------------------------------------- container bodies
# Module-level so cloudpickle ships them by reference: the container imports szflow (local source).
def stage_entry(job: dict) -> dict:
    """GPU stage body: run the job against the mounted volume, committing after each checkpoint."""
    import modal

    volume = modal.Volume.from_name(VOLUME_NAME)
    return run_job(job, VOLUME_MOUNT, WORK_ROOT, commit=volume.commit, reload=volume.reload,
                   sync_interval_s=RESUME_SYNC_S)


_ENTRIES = {"gpu-stage": stage_entry}


# ----------------------------------------------------------------------------- objects
def build_image() -> Any:
    import modal

    read_image_lock()  # a missing or unpinned lock fails here, before anything is sent
    return (
        modal.Image.debian_slim(python_version=IMAGE_PYTHON)
        .apt_install(*IMAGE_SPEC["apt"])
        # --no-deps: the lock is complete (tests check it), so pip adds nothing unpinned.
        .pip_install_from_requirements(str(IMAGE_LOCK), extra_options="--no-deps")
        .env({"PYTHONUNBUFFERED": "1", "SZFLOW_REMOTE": "modal"})
        .add_local_python_source(IMAGE_SPEC["local_source"])
    )


def build_retries(retries: int) -> Any:
    import modal

    if retries <= 0:
        return None
    # Backoff so a transient capacity problem is not hammered; preemptions are retried by Modal.
    return modal.Retries(max_retries=retries, backoff_coefficient=2.0, initial_delay=10.0, max_delay=60.0)


@dataclass
class RemoteApp:
    app: Any
    image: Any
    volume: Any
    secrets: dict[str, Any]
    functions: dict[str, Any]
    settings: dict[str, FunctionSettings]

    def stage_function(self, stage: str) -> Any:
        return self.functions[GPU_STAGES[stage].modal_function_name]


def build_app(params: Params) -> RemoteApp:
    """The App and its objects for these params. Lazy: no token, no network."""
    import modal

    settings = function_settings(params)
    app = modal.App(APP_NAME)
    image = build_image()
    volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
    needed = sorted({name for setting in settings.values() for name in setting.secrets})
    secrets = {name: modal.Secret.from_name(name, required_keys=list(SECRET_KEYS[name])) for name in needed}
    functions = {}
    for name, setting in settings.items():
        volumes: dict[str, Any] = {VOLUME_MOUNT: volume}
        kwargs: dict[str, Any] = {
            "image": image, "cpu": setting.cpu, "memory": setting.memory_mb, "timeout": setting.timeout_s,
            "volumes": volumes, "secrets": [secrets[s] for s in setting.secrets], "name": name,
            "serialized": True,
        }
        if setting.gpu:
            kwargs["gpu"] = setting.gpu
        retries = build_retries(setting.retries)
        if retries is not None:
            kwargs["retries"] = retries
        functions[name] = app.function(**kwargs)(_ENTRIES[setting.kind])
    return RemoteApp(app=app, image=image, volume=volume, secrets=secrets,
                     functions=functions, settings=settings)


# ----------------------------------------------------------------------------- running
# Re-attaching to a running call after a lost connection: tries in a row, and the first wait
# (doubling). A wait that ends with the call still running proves the connection and resets the count.
REATTACH_TRIES = 6
REATTACH_BACKOFF_S = 5.0
# One wait for a call's result; the call itself runs up to the profile's timeout_s.
WAIT_SLICE_S = 600.0


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors of the connection to Modal (not of the call): waiting again is the remedy. modal
    retries its own RPCs first; these are what remains after its retries."""
    import grpclib.exceptions
    import modal.exception

    return (modal.exception.ConnectionError, modal.exception.ServiceError,
            grpclib.exceptions.StreamTerminatedError, ConnectionError)


def _raised_remotely(exc: BaseException) -> bool:
    """Whether `exc` is the call's own exception, re-raised here by modal (its traceback then has the
    container's frames): a stage that failed with a ConnectionError is a failed call, not a lost
    connection."""
    try:
        from modal._traceback import traceback_contains_remote_call
    except ImportError:  # a modal without the helper: count it as a lost connection (bounded retries)
        return False
    return traceback_contains_remote_call(exc.__traceback__)


@dataclass
class CallWait:
    """What became of one wait for a Modal call."""

    stage: str
    call_id: str | None = None
    app_id: str | None = None
    # spawning | waiting | done | failed | gone | lost | interrupted
    state: str = "spawning"
    result: Any = None
    error: BaseException | None = None


class ModalRunner:
    """Runs a stage job on Modal and waits for its result.

    The call is spawned in a detached app and its id kept under .dvc/tmp (one record per stage and
    run key), so a client that dies or is interrupted (laptop asleep, Ctrl-C, CI killed) does not
    stop a day of training: the next run of the same job re-attaches to that call instead of
    starting a second one (two containers would write the same resume state). The record is
    cleared when the call's result is collected or the call failed, and kept otherwise.
    """

    def __init__(self, remote: RemoteApp, workdir: Path, *, reattach_tries: int = REATTACH_TRIES,
                 backoff_s: float = REATTACH_BACKOFF_S, wait_slice_s: float = WAIT_SLICE_S):
        self.remote = remote
        self.calls_dir = Path(workdir) / ".dvc/tmp/szflow-remote-calls"
        self.reattach_tries = reattach_tries
        self.backoff_s = backoff_s
        self.wait_slice_s = wait_slice_s

    def record_path(self, job: dict) -> Path:
        return self.calls_dir / f"{job['stage']}-{job['run_key']}.json"

    def run(self, job: dict) -> dict:
        import modal

        record = self.record_path(job)
        wait = CallWait(stage=job["stage"])
        try:
            with modal.enable_output():
                known = _read_record(record)
                if known is not None:
                    wait.call_id, wait.app_id = known["call_id"], known.get("app_id")
                    log.info("stage %s: re-attaching to Modal call %s, started earlier for this run",
                             job["stage"], wait.call_id)
                    self._wait(modal.FunctionCall.from_id(wait.call_id), wait)
                    if wait.state == "gone":  # not running: its outputs, if any, are on the volume
                        record.unlink(missing_ok=True)
                        wait = CallWait(stage=job["stage"])
                if wait.state == "spawning":
                    self._warn_about_other_calls(record)
                    # In detached mode modal swallows a KeyboardInterrupt (and a lost connection)
                    # raised in this block and returns normally; `wait.state` says what happened.
                    with self.remote.app.run(detach=True):
                        call = self.remote.stage_function(job["stage"]).spawn(job)
                        wait.call_id, wait.app_id = call.object_id, self.remote.app.app_id
                        atomic_write_json(record, {"call_id": wait.call_id, "app_id": wait.app_id,
                                                   "stage": job["stage"], "run_key": job["run_key"]})
                        self._wait(call, wait)
        except KeyboardInterrupt:
            wait.state = "interrupted"
        return self._conclude(record, wait)

    def _wait(self, call: Any, wait: CallWait) -> None:
        """Wait for the call's result; retry the wait (never the call) when the connection drops."""
        import modal.exception

        transient = _transient_errors()
        wait.state = "waiting"
        failures = 0
        while True:
            try:
                wait.result = call.get(timeout=self.wait_slice_s)
                wait.state = "done"
                return
            except KeyboardInterrupt:
                wait.state = "interrupted"
                raise
            except (modal.exception.NotFoundError, modal.exception.OutputExpiredError) as exc:
                wait.state, wait.error = "gone", exc
                log.info("stage %s: Modal call %s is gone (%s): starting a new one", wait.stage, wait.call_id,
                         type(exc).__name__)
                return
            except TimeoutError as exc:  # modal's "no result within the timeout": still running
                if _raised_remotely(exc):
                    wait.state, wait.error = "failed", exc
                    return
                failures = 0
            except transient as exc:
                if _raised_remotely(exc):
                    wait.state, wait.error = "failed", exc
                    return
                wait.error = exc
                failures += 1
                if failures == self.reattach_tries:
                    wait.state = "lost"
                    return
                delay = self.backoff_s * 2 ** (failures - 1)
                log.warning("stage %s: lost the connection to Modal while waiting for call %s (%s: %s); "
                            "re-attaching in %.0f s (try %d of %d)", wait.stage, wait.call_id,
                            type(exc).__name__, exc, delay, failures + 1, self.reattach_tries)
                time.sleep(delay)
            except Exception as exc:  # noqa: BLE001 - the call itself failed: report it, start afresh next time
                wait.state, wait.error = "failed", exc
                return

    def _warn_about_other_calls(self, record: Path) -> None:
        """Calls of this stage recorded for other runs (the code, params or inputs changed since)
        that still run are billing too: say so, with how to stop them. Records of calls that ended
        are removed (a finished run's outputs stay on the volume)."""
        import modal
        import modal.exception

        stage = record.name.split("-")[0]
        for other in sorted(self.calls_dir.glob(f"{stage}-*.json")):
            known = _read_record(other)
            if other == record or known is None:
                continue
            try:
                modal.FunctionCall.from_id(known["call_id"]).get(timeout=0)
            except TimeoutError:
                log.warning("stage %s: Modal call %s of an earlier run (%s) is still running; stop it with "
                            "`modal app stop %s` if it is not wanted", stage, known["call_id"], other.name,
                            known.get("app_id") or "<its app id>")
                continue
            except _transient_errors():
                continue  # unknown: keep the record
            except Exception as exc:  # noqa: BLE001 - failed, gone or expired: it runs no more
                log.info("stage %s: forgetting Modal call %s of an earlier run (%s)", stage, known["call_id"],
                         type(exc).__name__)
            other.unlink(missing_ok=True)

    def _conclude(self, record: Path, wait: CallWait) -> dict:
        if wait.state == "done":
            record.unlink(missing_ok=True)
            return wait.result
        if wait.state == "failed":
            record.unlink(missing_ok=True)
            raise SzflowError(f"stage {wait.stage}: Modal call {wait.call_id} failed: "
                              f"{type(wait.error).__name__}: {wait.error}") from wait.error
        if wait.call_id is None and wait.state == "interrupted":
            raise SzflowError(f"stage {wait.stage}: interrupted before its Modal call started; nothing runs on Modal")
        if wait.call_id is None:
            # modal swallowed a lost connection while the call was being started: it may exist.
            raise SzflowError(f"stage {wait.stage}: the connection to Modal ended while its call was being started; "
                              f"check `modal app list` for a running {self.remote.app.name} app before running again")
        stop = (f"modal app stop {wait.app_id}" if wait.app_id else
                f"python -c \"import modal; modal.FunctionCall.from_id('{wait.call_id}').cancel()\"")
        why = ("interrupted" if wait.state == "interrupted" else
               f"lost the connection to Modal ({type(wait.error).__name__}: {wait.error})" if wait.error else
               "the connection to Modal ended")
        raise SzflowError(f"stage {wait.stage}: {why}; Modal call {wait.call_id} keeps running: run the same "
                          f"command again to re-attach to it, or stop it with `{stop}`")


def _read_record(record: Path) -> dict | None:
    """The call started earlier for this job, or None (absent or unreadable record)."""
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("ignoring unreadable Modal call record %s", record)
        return None
    return known if isinstance(known, dict) and known.get("call_id") else None


def lookup_secret(name: str) -> None:
    """Raise modal.exception.NotFoundError unless the Modal Secret `name` exists with its keys.
    Needs a token and the network (one lookup, no container)."""
    import modal

    modal.Secret.from_name(name, required_keys=list(SECRET_KEYS[name])).hydrate()
