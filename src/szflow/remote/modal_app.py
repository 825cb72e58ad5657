"""The Modal objects: App, Image, Volume, Secrets and the functions that run szflow stages.

Everything is built from the params by `build_app(params)` (the GPU, CPUs, memory, timeout and
retries come from the active hardware profile), so one App serves any profile. Building needs no
token: Modal objects are lazy until an app runs. The functions are registered with
`serialized=True` so their settings can come from the params instead of from import-time globals;
their bodies only import `szflow` (added to the image as local source) and call
`szflow.remote.container.run_job`, the same code the loopback tests run as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from szflow.errors import ConfigError, SzflowError
from szflow.remote.stages import GPU_STAGES, PREPROCESS_OUTPUT, PREPROCESS_RECORDING_FUNCTION

if TYPE_CHECKING:
    from szflow.config import Params

log = logging.getLogger("szflow.remote")

APP_NAME = "szflow"
VOLUME_NAME = "szflow-cache"
VOLUME_MOUNT = "/vol"
WORK_ROOT = "/tmp/szflow-work"  # container-local disk: fast, and gone after a preemption (by design)
WANDB_SECRET = "wandb"
WANDB_KEYS = ("WANDB_API_KEY",)
# The TUSZ S3 bucket (only when params.data.root is s3://...): mounted read-only where the
# original setup had it, so recordings are at /data/edf/{split}/...
BUCKET_MOUNT = "/data"
BUCKET_SECRET = "tusz-s3"
BUCKET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
MODAL_MAX_TIMEOUT_S = 24 * 3600
# Seconds between copies of last.pt to the volume while training (each copy is one commit).
RESUME_SYNC_S = 60.0

# Image pins. torch 2.6 + CUDA 12.4 is a pair for which mamba-ssm 2.2.4 and causal-conv1d
# 1.5.0.post8 publish prebuilt wheels; with --no-build-isolation their setup.py finds the wheel
# matching the installed torch, and compiles with the devel image's nvcc only if none matches.
IMAGE_SPEC: dict[str, Any] = {
    "base": "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04",
    "python": "3.11",
    "torch": "torch==2.6.0",
    "torch_index": "https://download.pytorch.org/whl/cu124",
    "build_tools": ["packaging", "ninja", "wheel", "setuptools>=68"],
    "cuda_kernels": ["causal-conv1d==1.5.0.post8", "mamba-ssm==2.2.4"],
    "cuda_kernels_pip_options": "--no-build-isolation",
    # The runtime dependencies of szflow (pyproject), without torch (pinned above) and the
    # client-only tools (dvc, modal itself is provided by Modal).
    "runtime": [
        "numpy>=1.26,<3", "scipy>=1.11", "pandas>=2.1", "pyarrow>=14", "pyedflib>=0.1.38",
        "pydantic>=2.6", "pyyaml>=6", "typer>=0.12", "tqdm>=4.66", "rich>=13",
        "matplotlib>=3.8", "dvclive>=3.45", "wandb>=0.17", "timescoring>=0.0.5",
    ],
    "local_source": "szflow",
}


@dataclass(frozen=True)
class FunctionSettings:
    """Settings of one Modal function, as plain data (the plan prints them; tests check them)."""

    name: str
    kind: str  # "gpu-stage" | "cpu-map" | "cpu"
    gpu: str | None
    cpu: float
    memory_mb: int
    timeout_s: int
    retries: int
    volumes: dict[str, str] = field(default_factory=dict)  # mount point -> volume or bucket
    secrets: tuple[str, ...] = ()


def gpu_string(gpu: str, gpus: int) -> str:
    return gpu if gpus == 1 else f"{gpu}:{gpus}"


def stage_cpu(params: Params) -> float:
    """Each data-loader worker needs a core, plus the main process and a spare for I/O. With DDP
    every rank has its own workers. Never below the profile's `cpus` (Modal's default is a fraction
    of one core, which starved the data loader in an earlier project)."""
    hardware = params.hardware
    return float(max(hardware.cpus, hardware.num_workers * hardware.gpus + 2))


def bucket_of(params: Params) -> tuple[str, str] | None:
    """(bucket, key prefix) when the corpus root is an S3 URL, else None."""
    root = params.data.root
    if not root.startswith("s3://"):
        return None
    bucket, _, prefix = root[len("s3://"):].partition("/")
    if not bucket:
        raise ConfigError(f"params.yaml: key 'data.root': {root!r} has no bucket name")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/") if prefix else ""


def function_settings(params: Params) -> dict[str, FunctionSettings]:
    """Settings of every function the App defines for these params (no Modal import needed)."""
    hardware = params.hardware
    if not hardware.gpu:
        raise ConfigError(f"params/{params.hw}.yaml: key 'hardware.gpu': needed for Modal (e.g. A100-80GB)")
    if hardware.timeout_s > MODAL_MAX_TIMEOUT_S:
        raise ConfigError(
            f"params/{params.hw}.yaml: key 'hardware.timeout_s': {hardware.timeout_s} exceeds Modal's "
            f"limit of {MODAL_MAX_TIMEOUT_S} s (a longer training resumes from last.pt after a retry)"
        )
    wandb = (WANDB_SECRET,) if hardware.wandb_mode != "disabled" else ()
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
    bucket = bucket_of(params)
    if bucket is not None:
        mounts = {VOLUME_MOUNT: VOLUME_NAME, BUCKET_MOUNT: f"s3://{bucket[0]}/{bucket[1]}"}
        settings["list_recordings"] = FunctionSettings(
            name="list_recordings", kind="cpu", gpu=None, cpu=1.0, memory_mb=1024, timeout_s=600,
            retries=hardware.retries, volumes=mounts, secrets=(BUCKET_SECRET,),
        )
        # One recording per input; two cores each so filtering never waits on reading.
        settings["preprocess_recording"] = FunctionSettings(
            name="preprocess_recording", kind="cpu-map", gpu=None, cpu=2.0, memory_mb=4096,
            timeout_s=1800, retries=hardware.retries, volumes=mounts, secrets=(BUCKET_SECRET,),
        )
    return settings


# ----------------------------------------------------------------------------- container bodies
# Module-level so cloudpickle ships them by reference: the container imports szflow (local source).
def stage_entry(job: dict) -> dict:
    """GPU stage body: run the job against the mounted volume, committing after each checkpoint."""
    import modal

    from szflow.remote.container import run_job

    volume = modal.Volume.from_name(VOLUME_NAME)
    return run_job(job, VOLUME_MOUNT, WORK_ROOT, commit=volume.commit, reload=volume.reload,
                   sync_interval_s=RESUME_SYNC_S)


def list_recordings_entry(split: str) -> list[str]:
    """EDF paths (relative to the bucket mount) of one split, sorted."""
    root = Path(BUCKET_MOUNT) / "edf" / split
    return sorted(p.relative_to(BUCKET_MOUNT).as_posix() for p in root.rglob("*.edf"))


def preprocess_entry(item: dict) -> dict:
    """Preprocess one recording from the bucket into the volume (`.map` fans this out)."""
    import modal

    from szflow.config import Params
    from szflow.remote.stages import resolve_function

    params = Params.model_validate(item["params"])
    out_dir = Path(VOLUME_MOUNT) / item["out_prefix"] / Path(item["edf"]).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    fn = resolve_function(PREPROCESS_RECORDING_FUNCTION)
    try:
        result = fn(Path(BUCKET_MOUNT) / item["edf"], out_dir, params)
    except SzflowError as exc:
        # A bad file is reported and skipped, never fatal for the whole map (DESIGN §3, §5).
        return {"edf": item["edf"], "ok": False, "error": str(exc)}
    modal.Volume.from_name(VOLUME_NAME).commit()
    return {"edf": item["edf"], "ok": True, "result": result}


_ENTRIES = {"gpu-stage": stage_entry, "cpu": list_recordings_entry, "cpu-map": preprocess_entry}


# ----------------------------------------------------------------------------- objects
def build_image() -> Any:
    import modal

    spec = IMAGE_SPEC
    return (
        modal.Image.from_registry(spec["base"], add_python=spec["python"])
        .apt_install("git", "build-essential")
        .pip_install(spec["torch"], index_url=spec["torch_index"])
        .pip_install(*spec["build_tools"])
        # One kernel package per layer: causal-conv1d must be importable when mamba-ssm builds.
        .pip_install(spec["cuda_kernels"][0], extra_options=spec["cuda_kernels_pip_options"])
        .pip_install(spec["cuda_kernels"][1], extra_options=spec["cuda_kernels_pip_options"])
        .pip_install(*spec["runtime"])
        .env({"PYTHONUNBUFFERED": "1", "SZFLOW_REMOTE": "modal"})
        .add_local_python_source(spec["local_source"])
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
    bucket: Any | None
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
    secrets: dict[str, Any] = {}
    if params.hardware.wandb_mode != "disabled":
        secrets[WANDB_SECRET] = modal.Secret.from_name(WANDB_SECRET, required_keys=list(WANDB_KEYS))
    bucket = None
    located = bucket_of(params)
    if located is not None:
        secrets[BUCKET_SECRET] = modal.Secret.from_name(BUCKET_SECRET, required_keys=list(BUCKET_KEYS))
        bucket = modal.CloudBucketMount(bucket_name=located[0], key_prefix=located[1] or None,
                                        secret=secrets[BUCKET_SECRET], read_only=True)
    functions = {}
    for name, setting in settings.items():
        volumes: dict[str, Any] = {VOLUME_MOUNT: volume}
        if BUCKET_MOUNT in setting.volumes:
            volumes[BUCKET_MOUNT] = bucket
        kwargs: dict[str, Any] = dict(
            image=image, cpu=setting.cpu, memory=setting.memory_mb, timeout=setting.timeout_s,
            volumes=volumes, secrets=[secrets[s] for s in setting.secrets], name=name, serialized=True,
        )
        if setting.gpu:
            kwargs["gpu"] = setting.gpu
        retries = build_retries(setting.retries)
        if retries is not None:
            kwargs["retries"] = retries
        functions[name] = app.function(**kwargs)(_ENTRIES[setting.kind])
    return RemoteApp(app=app, image=image, volume=volume, secrets=secrets, bucket=bucket,
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
            call = None
            if record.is_file():
                try:
                    call = modal.FunctionCall.from_id(json.loads(record.read_text())["call_id"])
                    log.info("re-attaching to running Modal call for %s", job["stage"])
                except Exception:  # expired or unknown call: start a fresh one
                    call = None
            if call is None:
                call = fn.spawn(job)
                from szflow.io_utils import atomic_write_json

                atomic_write_json(record, {"call_id": call.object_id})
            result = call.get()
        record.unlink(missing_ok=True)
        return result


def job_fingerprint(job: dict) -> str:
    """Stable key of a job: stage, function, params and input contents."""
    payload = {k: job[k] for k in ("stage", "function", "params", "inputs", "outputs")}
    payload["params"] = {k: v for k, v in job["params"].items() if k != "root"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def preprocess_plan_entry(params: Params) -> dict | None:
    """Where preprocessing would run: fan-out on Modal CPU containers when the corpus is in S3."""
    located = bucket_of(params)
    if located is None:
        return None
    return {
        "bucket": f"s3://{located[0]}/{located[1]}",
        "mount": f"{BUCKET_MOUNT}/edf/{{split}}",
        "map_function": "preprocess_recording",
        "core_function": PREPROCESS_RECORDING_FUNCTION,
        "download": [PREPROCESS_OUTPUT],
    }
