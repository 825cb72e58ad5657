"""GPU check: our pure-PyTorch Mamba-2 vs mamba_ssm's kernels on the same weights, and throughput of both.

    python benchmarks/gpu_model_check.py                 # on a machine with one NVIDIA GPU
    python benchmarks/gpu_model_check.py --dry-run       # any machine: builds everything, runs nothing
    python benchmarks/gpu_model_check.py --smoke         # tiny model on CPU: exercises the script only

Installs nothing: run it in an environment made from the Modal image lock (docs/install_cuda.md,
"Device check", shows how to carry the locked wheels to a machine without network). Reports (one
JSON line at the end):
- the installed torch / mamba-ssm / causal-conv1d / transformers / triton against the image lock;
- parity of one seed-size block (the model in params.yaml), fp32 and bf16 autocast: outputs and
  input/weight gradients; of the whole detector (fp32); and that padded frames do not leak with the
  kernels either;
- a training step of the seed-size detector at the a100 profile's batch size and precision (AdamW),
  inference seconds per hour of EEG (60 s windows, the profile's inference batch, no grad), and
  peak GPU memory of each, for each implementation.
Without CUDA it prints a JSON error and exits 2. Parts needing mamba_ssm are null (with the reason)
when it does not import. Needs ~2-3 min on an A100/H100 (the first mamba_ssm call JIT-compiles its
Triton kernels); `--budget-s` (default 480) stops before a part that would not fit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
import torch.nn.functional as F

from szflow.config import ModelConfig, load_params
from szflow.model import Detector
from szflow.model.detector import count_parameters
from szflow.model.mamba_cuda import build_mamba_ssm_block, mamba_ssm_status
from szflow.model.mamba_torch import Mamba2Torch
from szflow.remote.modal_app import read_image_lock

REPO = Path(__file__).resolve().parents[1]
LOCKED = ("torch", "mamba-ssm", "causal-conv1d", "transformers", "triton")

SAMPLES_60S = 60 * 256


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def block_parity(cfg: ModelConfig, device: torch.device, length: int) -> dict:
    torch.manual_seed(0)
    ours = Mamba2Torch(cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, chunk_size=cfg.chunk_size).to(device)
    theirs = build_mamba_ssm_block(
        cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, cfg.chunk_size, ours.headdim
    ).to(device)
    theirs.load_state_dict(ours.state_dict())  # strict: names and shapes agree
    u = torch.randn(4, length, cfg.d_model, device=device)
    out = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        results = []
        for module in (ours, theirs):
            module.zero_grad(set_to_none=True)
            x = u.clone().requires_grad_(True)
            with autocast(device, bf16):
                y = module(x)
            y.float().pow(2).mean().backward()
            results.append((y.detach(), x.grad, module.in_proj.weight.grad, module.A_log.grad))
        (yo, gxo, gwo, gao), (yt, gxt, gwt, gat) = results
        out[name] = {
            "out_max_abs_diff": max_diff(yo, yt),
            "out_max_abs": yt.float().abs().max().item(),
            "grad_input_max_abs_diff": max_diff(gxo, gxt),
            "grad_in_proj_max_abs_diff": max_diff(gwo, gwt),
            "grad_A_log_max_abs_diff": max_diff(gao, gat),
        }
    return out


def detector_parity(cfg: ModelConfig, device: torch.device) -> dict:
    torch.manual_seed(1)
    ours = Detector(cfg, mamba_impl="torch").to(device).eval()
    theirs = Detector(cfg, mamba_impl="cuda").to(device).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, cfg.in_channels, SAMPLES_60S, device=device)
    frames = ours.frames_for(SAMPLES_60S)
    mask = torch.ones(2, frames, dtype=torch.bool, device=device)
    mask[1, frames // 2 :] = False
    with torch.no_grad():
        lo, lt = ours(x), theirs(x)
        masked = theirs(x, mask)
        alone = theirs(x[1:, :, : (frames // 2) * ours.samples_per_frame])
    return {
        "logits_max_abs_diff_fp32": max_diff(lo, lt),
        "mask_leak_max_abs_diff_cuda": max_diff(masked[1, : frames // 2], alone[0]),
    }


def throughput(cfg: ModelConfig, impl: str, device: torch.device, batch: int, infer_batch: int,
               steps: int, bf16: bool) -> dict:
    torch.manual_seed(2)
    model = Detector(cfg, mamba_impl=impl).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, cfg.in_channels, SAMPLES_60S, device=device)
    y = (torch.rand(batch, model.frames_for(SAMPLES_60S), device=device) < 0.3).float()

    def step() -> None:
        with autocast(device, bf16):
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):  # warm-up: Triton JIT, cuDNN autotune, allocator
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    train_s = (time.perf_counter() - start) / steps
    peak_gb = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None

    model.eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    xi = torch.randn(infer_batch, cfg.in_channels, SAMPLES_60S, device=device)
    with torch.no_grad(), autocast(device, bf16):
        for _ in range(2):
            model(xi)
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            model(xi)
        sync(device)
    infer_s = (time.perf_counter() - start) / steps
    infer_peak_gb = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    return {
        "train_step_s": round(train_s, 4),
        "train_windows_per_s": round(batch / train_s, 2),
        "train_peak_mem_gb": round(peak_gb, 2) if peak_gb is not None else None,
        "inference_s_per_eeg_hour": round(infer_s * 60 / infer_batch, 4),
        "inference_peak_mem_gb": round(infer_peak_gb, 2) if infer_peak_gb is not None else None,
    }


def installed_versus_lock() -> dict:
    """{package: {"installed", "locked", "match"}} for the packages the kernels depend on."""
    pins = read_image_lock()
    out = {}
    for name in LOCKED:
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        pin = pins.get(name, "")
        locked = pin[2:] if pin.startswith("==") else pin.rsplit("/", 1)[-1].split("-")[1] if pin else None
        # A kernel wheel's version carries a local tag (+cu12torch2.6...): compare the public part.
        match = installed is not None and locked is not None and installed.split("+")[0] == locked.split("+")[0]
        out[name] = {"installed": installed, "locked": locked, "match": match}
    return out


def main() -> None:
    profile = load_params(REPO, hw="a100")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=profile.hardware.train_batch_size)
    parser.add_argument("--infer-batch", type=int, default=profile.hardware.inference_batch_size)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip parts that start after this")
    parser.add_argument("--dry-run", action="store_true", help="build models and report, run nothing (CPU)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, CPU allowed, fp32 (tests the script)")
    args = parser.parse_args()
    started = time.monotonic()

    usable, reason = mamba_ssm_status()
    cfg = profile.model  # the model dvc repro trains
    if args.smoke:
        cfg = ModelConfig.model_validate({**cfg.model_dump(), "n_layers": 1, "d_model": 64,
                                          "encoder_channels": [8, 16, 32], "dropout": 0.0})
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        args.batch, args.infer_batch, args.steps = 2, 2, 1
    elif args.dry_run:
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            print(json.dumps({"benchmark": "model_gpu", "error": "CUDA unavailable: this check needs one NVIDIA "
                              "GPU (use --dry-run or --smoke on CPU)"}))
            raise SystemExit(2)
        device = torch.device("cuda")
    bf16 = device.type == "cuda" and profile.hardware.precision == "bf16"
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity means fp32 matmuls on our side

    result: dict = {
        "benchmark": "model_gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "mamba_ssm": reason,
        "packages": installed_versus_lock(),
        "params": count_parameters(Detector(cfg, mamba_impl="torch")),
        "batch": args.batch,
        "inference_batch": args.infer_batch,
        "precision": "bf16-autocast" if bf16 else "fp32",
    }
    try:
        import mamba_ssm

        result["mamba_ssm_version"] = getattr(mamba_ssm, "__version__", "?")
    except Exception:  # noqa: BLE001 - reported in "mamba_ssm" already
        result["mamba_ssm_version"] = None
    if args.dry_run:
        # What a device run builds, built here: the seed-size block and detector, a training batch.
        block = Mamba2Torch(cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, chunk_size=cfg.chunk_size)
        model = Detector(cfg, mamba_impl="torch")
        result["dry_run"] = {"block_parameters": sum(p.numel() for p in block.parameters()),
                             "frames_per_60s": model.frames_for(SAMPLES_60S),
                             "train_input_shape": [args.batch, cfg.in_channels, SAMPLES_60S]}
        print(json.dumps(result))
        return

    def in_budget(part: str) -> bool:
        if time.monotonic() - started < args.budget_s:
            return True
        result.setdefault("skipped_over_budget", []).append(part)
        return False

    result["block_parity"] = block_parity(cfg, device, 240) if usable and in_budget("block_parity") else None
    result["detector_parity"] = detector_parity(cfg, device) if usable and in_budget("detector_parity") else None
    result["cuda_impl"] = (
        throughput(cfg, "cuda", device, args.batch, args.infer_batch, args.steps, bf16)
        if usable and in_budget("cuda_impl") else None
    )
    result["torch_impl"] = (throughput(cfg, "torch", device, args.batch, args.infer_batch, args.steps, bf16)
                            if in_budget("torch_impl") else None)
    if result["cuda_impl"] and result["torch_impl"]:
        result["speedup_cuda_vs_torch_train"] = round(
            result["torch_impl"]["train_step_s"] / result["cuda_impl"]["train_step_s"], 2
        )
    result["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
