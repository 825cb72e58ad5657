"""What would run where, without a token: `szflow remote plan` and `szflow remote check`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from szflow.config import Params
from szflow.errors import SzflowError
from szflow.remote.credentials import modal_token_status
from szflow.remote.modal_app import (
    APP_NAME,
    IMAGE_LOCK,
    IMAGE_PYTHON,
    KERNEL_PACKAGES,
    SECRET_FIX,
    VOLUME_MOUNT,
    VOLUME_NAME,
    build_app,
    function_settings,
    image_summary,
    lookup_secret,
    read_image_lock,
)
from szflow.remote.specs import GPU_STAGES
from szflow.remote.store import HashCache, iter_files

NOT_BUILT = "not built yet"


def _files(root: Path, rel: str, hashes: HashCache | None) -> list[dict]:
    path = root / rel
    if not path.exists():
        return [{"path": rel, "status": NOT_BUILT}]
    entries = []
    for file in iter_files(path):
        rel_file = file.relative_to(root).as_posix()
        entry: dict[str, Any] = {"path": rel_file, "size": file.stat().st_size}
        if hashes is not None:
            entry["sha256"] = hashes.digest(rel_file)
        entries.append(entry)
    return entries


def build_plan(params: Params, root: str | Path = Path("."), hash_files: bool = True) -> dict:
    """Per stage: executor, function, resources, volumes, files to upload (size, sha256) and to
    download. Reads local files only; needs no token and no network."""
    root = Path(root)
    hardware = params.hardware
    remote = hardware.executor == "modal"
    settings = function_settings(params) if remote else {}
    hashes = HashCache(root) if hash_files else None
    stages: dict[str, Any] = {}
    for name, spec in GPU_STAGES.items():
        entry: dict[str, Any] = {
            "executor": hardware.executor,
            "core_function": spec.function,
            "description": spec.description,
        }
        if remote:
            fs = settings[spec.modal_function_name]
            entry.update({
                "modal_function": fs.name, "gpu": fs.gpu, "cpus": fs.cpu, "memory_mb": fs.memory_mb,
                "timeout_s": fs.timeout_s, "retries": fs.retries, "volumes": fs.volumes,
                "secrets": list(fs.secrets), "resume_files": list(spec.resume_files),
                "distributed": spec.distributed and hardware.gpus > 1,
            })
            upload = []
            for rel in (*spec.inputs, *spec.config_inputs):
                upload.extend(_files(root, rel, hashes))
            entry["upload"] = upload
            entry["upload_bytes"] = sum(f.get("size", 0) for f in upload)
            entry["download"] = list(spec.outputs)
        else:
            entry.update({"device": hardware.device, "gpu": None, "cpus": hardware.cpus,
                          "inputs": [{"path": p, "exists": (root / p).exists()} for p in spec.inputs],
                          "outputs": list(spec.outputs)})
        stages[name] = entry
    if hashes is not None:
        hashes.save()
    plan: dict[str, Any] = {
        "hw": params.hw,
        "executor": hardware.executor,
        "stages": stages,
    }
    if remote:
        plan["modal"] = {
            "app": APP_NAME,
            "volume": {"name": VOLUME_NAME, "mount": VOLUME_MOUNT, "create_if_missing": True},
            "image": image_summary(),
            "token": modal_token_status().describe(),
        }
    return plan


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def format_plan(plan: dict) -> str:
    lines = [f"profile: {plan['hw']} (executor: {plan['executor']})"]
    if "modal" in plan:
        modal = plan["modal"]
        lines.append(f"modal app {modal['app']}; volume {modal['volume']['name']} at {modal['volume']['mount']}; "
                     f"image {modal['image']['base']} + {modal['image']['torch']} + "
                     f"{', '.join(modal['image']['cuda_kernels'])}")
        lines.append(f"token: {modal['token']}")
    for name, stage in plan["stages"].items():
        lines.append(f"\n{name}: {stage['executor']} -> {stage['core_function']}")
        if stage["executor"] == "modal":
            lines.append(f"  function {stage['modal_function']}: gpu {stage['gpu']}, {stage['cpus']:g} CPUs, "
                         f"{stage['memory_mb']} MB, timeout {stage['timeout_s']} s, retries {stage['retries']}"
                         + (", DDP (torchrun)" if stage["distributed"] else ""))
            lines.append(f"  volumes: {stage['volumes']}; secrets: {stage['secrets'] or 'none'}"
                         + (f"; resumes from {', '.join(stage['resume_files'])}" if stage["resume_files"] else ""))
            lines.append(f"  upload ({_size(stage['upload_bytes'])}, skipped when already on the volume):")
            for f in stage["upload"]:
                if "status" in f:
                    lines.append(f"    {f['path']}: {f['status']}")
                else:
                    digest = f" sha256 {f['sha256'][:12]}" if "sha256" in f else ""
                    lines.append(f"    {f['path']}: {_size(f['size'])}{digest}")
            lines.append(f"  download: {', '.join(stage['download'])}")
        else:
            lines.append(f"  device {stage['device']}, {stage['cpus']:g} CPUs")
            for i in stage["inputs"]:
                lines.append(f"    in  {i['path']}" + ("" if i["exists"] else f" ({NOT_BUILT})"))
            lines.append(f"    out {', '.join(stage['outputs'])}")
    return "\n".join(lines)


class Check(NamedTuple):
    """One line of `szflow remote check`: what was checked, whether it passed, what was found, and
    the command that fixes it (empty when nothing is to be done)."""

    name: str
    ok: bool
    message: str
    fix: str = ""


PYTHON_FIX = (f"run szflow with Python {IMAGE_PYTHON} (the image's; functions are shipped pickled, "
              f"which needs the same minor version), e.g. `uv venv -p {IMAGE_PYTHON}` or `pyenv install {IMAGE_PYTHON}`")
LOCK_FIX = "reinstall szflow (`pip install -e .`); to change pins, regenerate the lock as docs/modal.md says"


def check_python(version: tuple[int, int] | None = None) -> Check:
    major, minor = version or sys.version_info[:2]
    ok = f"{major}.{minor}" == IMAGE_PYTHON
    message = (f"client Python {major}.{minor} matches the image's" if ok
               else f"client Python {major}.{minor}, but the Modal image runs Python {IMAGE_PYTHON}")
    return Check("client python", ok, message, "" if ok else PYTHON_FIX)


def check_image_lock(path: Path = IMAGE_LOCK) -> Check:
    """The lock is there, pins every line exactly, and its kernel wheels are built for its torch
    minor and the image's Python (their file names say so)."""
    try:
        pins = read_image_lock(path)
    except SzflowError as exc:
        return Check("image lock", False, str(exc), LOCK_FIX)
    torch_pin = pins.get("torch", "")
    if not torch_pin.startswith("=="):
        return Check("image lock", False, f"{path.name} does not pin torch exactly", LOCK_FIX)
    torch_minor = ".".join(torch_pin[2:].split(".")[:2])
    cp = "cp" + IMAGE_PYTHON.replace(".", "")
    for name in KERNEL_PACKAGES:
        wheel = pins.get(name, "").rsplit("/", 1)[-1]
        if f"torch{torch_minor}" not in wheel or f"-{cp}-{cp}-" not in wheel:
            return Check("image lock", False,
                         f"{path.name}: {name} must be a prebuilt wheel for torch {torch_minor} and {cp} "
                         f"(found {pins.get(name, 'nothing')!r})", LOCK_FIX)
    return Check("image lock", True, f"{path.name}: {len(pins)} packages pinned, torch{torch_pin}, "
                 f"kernel wheels for torch {torch_minor} / {cp}")


def needed_secrets(params: Params) -> list[str]:
    return sorted({name for s in function_settings(params).values() for name in s.secrets})


def check_secrets(params: Params, token_present: bool, lookup: Callable[[str], None] | None) -> list[Check]:
    """One check per Modal Secret the profile needs. `lookup(name)` raises when the secret is
    missing (modal's NotFoundError); None means do not reach Modal."""
    checks = []
    for name in needed_secrets(params):
        fix = SECRET_FIX[name].replace("params/<hw>.yaml", f"params/{params.hw}.yaml")
        why = f"Modal Secret {name!r} (needed by hardware.wandb_mode: {params.hardware.wandb_mode})"
        if not token_present:
            checks.append(Check(f"secret {name}", False, f"cannot check secrets without a token: {why}", fix))
        elif lookup is None:
            checks.append(Check(f"secret {name}", False, f"not looked up (offline check): {why}", fix))
        else:
            try:
                lookup(name)
            except Exception as exc:  # noqa: BLE001 - NotFoundError, missing keys, network: report all
                missing = type(exc).__name__ == "NotFoundError"
                message = f"{why} does not exist" if missing else f"{why}: {type(exc).__name__}: {exc}"
                checks.append(Check(f"secret {name}", False, message, fix))
            else:
                checks.append(Check(f"secret {name}", True, f"{why} exists"))
    return checks


def preflight(params: Params, lookup: Callable[[str], None] | None = lookup_secret) -> list[Check]:
    """Everything a Modal run needs before any upload: token, client Python, image lock, secrets.
    With a token, each secret is one lookup on Modal (pass lookup=None to stay offline)."""
    status = modal_token_status()
    checks = [Check("token", status.present, status.describe(), "" if status.present else "modal token new")]
    checks.append(check_python())
    checks.append(check_image_lock())
    checks.extend(check_secrets(params, status.present, lookup))
    return checks


def require_ready(params: Params, lookup: Callable[[str], None] | None = lookup_secret) -> None:
    """Raise with every problem and its fix (the Modal executor calls this before uploading)."""
    problems = [c for c in preflight(params, lookup) if not c.ok]
    if problems:
        lines = "\n".join(f"  - {c.name}: {c.message}" + (f"\n    fix: {c.fix}" if c.fix else "") for c in problems)
        raise SzflowError(f"the Modal setup is not ready (`szflow remote check` shows it):\n{lines}")


def check_remote(params: Params, reach_volume: bool = True,
                 lookup: Callable[[str], None] | None = lookup_secret) -> list[Check]:
    """`preflight`, plus: the app builds, the volume is reachable. With reach_volume=False nothing
    touches Modal (no secret lookup, no volume listing)."""
    checks = preflight(params, lookup if reach_volume else None)
    present = checks[0].ok
    remote = None
    try:
        remote = build_app(params)
        summary = ", ".join(f"{s.name} ({s.gpu or 'cpu'}, {s.cpu:g} CPU, {s.timeout_s} s)"
                            for s in remote.settings.values())
        checks.append(Check("app builds", True, f"app {remote.app.name}: {summary}"))
    except Exception as exc:  # noqa: BLE001 - any construction error is the message to show
        checks.append(Check("app builds", False, f"{type(exc).__name__}: {exc}"))
    if not present:
        checks.append(Check("volume reachable", False, "skipped: needs a Modal token", "modal token new"))
    elif remote is None:
        checks.append(Check("volume reachable", False, "skipped: the app does not build"))
    elif reach_volume:
        try:
            remote.volume.hydrate()
            remote.volume.listdir("/")
            checks.append(Check("volume reachable", True, f"volume {remote.volume.name} reachable"))
        except Exception as exc:  # noqa: BLE001 - network, auth or workspace errors: report, never raise
            checks.append(Check("volume reachable", False, f"{type(exc).__name__}: {exc}"))
    return checks


def checks_json(checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "checks": [c._asdict() for c in checks],
            "missing": [{"check": c.name, "message": c.message, "fix": c.fix} for c in checks if not c.ok]}
