"""What would run where, without a token: `szflow remote plan` and `szflow remote check`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from szflow.config import Params
from szflow.remote.credentials import modal_token_status
from szflow.remote.modal_app import (
    APP_NAME,
    IMAGE_SPEC,
    VOLUME_MOUNT,
    VOLUME_NAME,
    build_app,
    function_settings,
    preprocess_plan_entry,
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
    fanout = preprocess_plan_entry(params)
    preprocess: dict[str, Any] = {"executor": "local", "reason": "corpus on local disk"}
    if fanout is not None:
        fs = function_settings(params)["preprocess_recording"]
        preprocess = {"executor": "modal-map", **fanout, "cpus": fs.cpu, "memory_mb": fs.memory_mb,
                      "timeout_s": fs.timeout_s, "retries": fs.retries}
    plan: dict[str, Any] = {
        "hw": params.hw,
        "executor": hardware.executor,
        "stages": stages,
        "preprocess": preprocess,
    }
    if remote:
        plan["modal"] = {
            "app": APP_NAME,
            "volume": {"name": VOLUME_NAME, "mount": VOLUME_MOUNT, "create_if_missing": True},
            "image": {k: IMAGE_SPEC[k] for k in ("base", "python", "torch", "cuda_kernels")},
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
    pre = plan["preprocess"]
    if pre["executor"] == "modal-map":
        lines.append(f"\npreprocess: Modal .map over recordings in {pre['bucket']} (mounted at {pre['mount']}), "
                     f"{pre['cpus']:g} CPU / {pre['memory_mb']} MB each; download {', '.join(pre['download'])}")
    else:
        lines.append(f"\npreprocess: local ({pre['reason']})")
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


def check_remote(params: Params, reach_volume: bool = True) -> list[tuple[str, bool, str]]:
    """(check, ok, message) for: token present, app builds, volume reachable (only with a token)."""
    checks: list[tuple[str, bool, str]] = []
    status = modal_token_status()
    checks.append(("token", status.present, status.describe()))
    remote = None
    try:
        remote = build_app(params)
        summary = ", ".join(f"{s.name} ({s.gpu or 'cpu'}, {s.cpu:g} CPU, {s.timeout_s} s)"
                            for s in remote.settings.values())
        checks.append(("app builds", True, f"app {remote.app.name}: {summary}"))
    except Exception as exc:  # noqa: BLE001 - any construction error is the message to show
        checks.append(("app builds", False, f"{type(exc).__name__}: {exc}"))
    if not status.present:
        checks.append(("volume reachable", False, "skipped: needs a Modal token"))
    elif remote is None:
        checks.append(("volume reachable", False, "skipped: the app does not build"))
    elif reach_volume:
        try:
            remote.volume.hydrate()
            remote.volume.listdir("/")
            checks.append(("volume reachable", True, f"volume {remote.volume.name} reachable"))
        except Exception as exc:  # noqa: BLE001 - network, auth or workspace errors: report, never raise
            checks.append(("volume reachable", False, f"{type(exc).__name__}: {exc}"))
    return checks
