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
class ModalRunner:
    """Runs a stage job on Modal and waits for its result.

    The app is detached and the call id remembered under .dvc/tmp, so a client that dies (laptop
    asleep, CI killed) does not kill a day of training: the next `dvc exp run` with the same job
    re-attaches to the running call instead of starting a second one.
    """

    def __init__(self, remote: RemoteApp, workdir: Path):
        self.remote = remote
        self.calls_dir = Path(workdir) / ".dvc/tmp/szflow-remote-calls"

    def run(self, job: dict) -> dict:
        import modal

        record = self.calls_dir / f"{job['stage']}-{job['run_key']}.json"
        fn = self.remote.stage_function(job["stage"])
        with modal.enable_output(), self.remote.app.run(detach=True):
            if record.is_file():
                try:
                    call = modal.FunctionCall.from_id(json.loads(record.read_text())["call_id"])
                    log.info("re-attaching to the Modal call already running for %s", job["stage"])
                    result = call.get()
                except Exception as exc:  # noqa: BLE001 - failed, expired or unknown: start afresh
                    log.info("earlier Modal call for %s is not usable (%s): starting a new one",
                             job["stage"], type(exc).__name__)
                else:
                    record.unlink(missing_ok=True)
                    return result
            call = fn.spawn(job)
            atomic_write_json(record, {"call_id": call.object_id})
            result = call.get()
        record.unlink(missing_ok=True)
        return result


def lookup_secret(name: str) -> None:
    """Raise modal.exception.NotFoundError unless the Modal Secret `name` exists with its keys.
    Needs a token and the network (one lookup, no container)."""
    import modal

    modal.Secret.from_name(name, required_keys=list(SECRET_KEYS[name])).hydrate()
