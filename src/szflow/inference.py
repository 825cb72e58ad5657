"""The one inference path: whole recordings -> one per-frame seizure probability track each.

Training validation, the dev/eval stages and `szflow detect` all call `predict_tracks`, so a model
is always scored the same way: every recording is cut into `window_s` windows overlapping by
`overlap_s` (`szflow.cache.InferenceWindows`: the last window aligned to the end; a recording
shorter than one window is one padded window whose padding is masked), windows are batched across
recordings, and the sigmoid outputs are stitched back into one track per recording. In the
overlaps each frame is taken from the window whose centre is nearest (the frame with the most
context on both sides, which is what a bidirectional model needs), never averaged with a frame
seen at a window edge. Scoring then runs on whole recordings (DESIGN.md §7: a 60 s window is not
a recording).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from szflow.cache.dataset import InferenceWindowDataset
from szflow.cache.sampler import InferenceWindows
from szflow.errors import SzflowError
from szflow.scoring import ProbabilityTrack

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

log = logging.getLogger("szflow.inference")


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes in bf16 natively. Without it (a CPU with no AVX512-BF16 or AMX),
    bf16 autocast is emulated and a training step is tens of times slower than in fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """`auto` -> bf16 where `device` has native bf16, else fp32; an explicit precision is kept.

    Resolved where the work runs (this machine, or the Modal container), so one profile serves a
    bf16-capable CPU and one without. An explicit bf16 on a device without it is kept but logged:
    it is correct, only slow.
    """
    if precision != "auto" and precision not in PRECISIONS:
        raise SzflowError(f"hardware.precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    native = native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        log.warning("hardware.precision is bf16 but %s has no native bf16 (it is emulated, far slower "
                    "than fp32); set hardware.precision: auto or fp32", torch.device(device))
    return precision


def resolve_device(hardware_device: str | torch.device) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is an error, never a silent CPU run."""
    if isinstance(hardware_device, torch.device):
        return hardware_device
    name = str(hardware_device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SzflowError(f"hardware.device is {name!r} but no CUDA device is available here")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise SzflowError(f"hardware.device {name!r} is not one of auto, cpu, cuda")
    return torch.device(name)


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for `precision` (auto | fp32 | bf16 | fp16) on `device`; fp32 is a no-op."""
    if precision == "auto":
        precision = resolve_precision(precision, device)
    if precision not in PRECISIONS:
        raise SzflowError(f"hardware.precision {precision!r} is not one of {sorted(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def predict_tracks(
    model: torch.nn.Module,
    store,
    recording_ids: Sequence[str],
    *,
    window_s: float,
    overlap_s: float,
    batch_size: int,
    device: torch.device | str,
    precision: str = "fp32",
    frame_rate_hz: float,
    progress: bool = True,
    num_workers: int = 0,
) -> list[ProbabilityTrack]:
    """One `ProbabilityTrack` (per-frame seizure probability, reference seizures) per recording id.

    Windows come from `szflow.cache.InferenceWindows` and are stitched with its `stitch`, so this
    function only batches them through the model. The model is put in eval mode and restored after.
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    recording_ids = [str(rid) for rid in recording_ids]
    if not recording_ids:
        return []
    windows = InferenceWindows(store, recording_ids, window_s=window_s, overlap_s=overlap_s)
    dataset = InferenceWindowDataset(windows, frame_rate_hz=frame_rate_hz)
    spf = dataset.samples_per_frame
    model_spf = getattr(model, "samples_per_frame", spf)
    if model_spf != spf:
        raise SzflowError(f"the model has {model_spf} samples per frame; {frame_rate_hz} Hz frames need {spf}")
    frames_per_window = windows.window // spf
    outputs = np.zeros((len(windows), frames_per_window), dtype=np.float32)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=max(1, int(batch_size)), shuffle=False, num_workers=num_workers,
        pin_memory=device.type == "cuda",
        # Own generator: starting a DataLoader draws a seed, and inference must not move the global
        # RNG (training validates mid-run; a resumed run must see the same random numbers).
        generator=torch.Generator(),
    )

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(windows), desc="inference", unit="win",
                                          disable=not progress, leave=False) as bar:
            for batch in loader:
                x = batch["x"].to(device, non_blocking=True)
                valid = batch["valid"]
                # A mask only where some window runs past its recording's end (the common case has none).
                mask = None if bool(valid.all()) else valid.to(device)
                # Likewise the presence mask, only where some window's recording lacks an electrode.
                present = batch["present"]
                present = None if bool(present.all()) else present.to(device)
                with autocast(device, precision):
                    logits = model(x, mask, present)
                outputs[batch["index"].numpy()] = torch.sigmoid(logits.float()).cpu().numpy()
                bar.update(len(x))
    finally:
        model.train(was_training)

    durations = dict(zip(store.index["recording_id"].astype(str), store.index["duration_s"], strict=True))
    return [
        ProbabilityTrack(
            recording_id=rid,
            probabilities=windows.stitch(rid, outputs[list(windows.window_indices(rid))], frame_rate_hz),
            frame_rate_hz=float(frame_rate_hz), duration_s=float(durations[rid]),
            reference=store.seizure_intervals(rid),
        )
        for rid in recording_ids
    ]
