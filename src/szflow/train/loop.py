"""The training stage: Detector on balanced 60 s windows of the train cache, selected on a validation
split of whole patients scored like dev/eval.

Outputs (under `workdir`):
  models/best.pt          weights at the best validation selection metric (no training state); with
                          train.ema_decay > 0, the moving average of the weights (szflow.train.averaging)
  models/last.pt          every `checkpoint_every_steps` and at the end, with optimizer, scheduler,
                          scaler, sampler position, RNG states and the selection bookkeeping
  models/baseline.json    the classical baseline, fitted on the same training recordings
  metrics/train.json      final and best metrics
  metrics/train_curves/   DVCLive curves (per-step loss, lr, windows/s; per-eval validation scores)

Resume: when models/last.pt exists and was written by a run with the same params hash (model,
train, sampler and preprocess sections, and the hardware keys that change the arithmetic: batch
size, precision, gradient accumulation), training continues from it and ends with the same weights
as an uninterrupted run (bit-exact on CPU). Any other last.pt is ignored with a log line saying
why, and a fresh run replaces it: runs are never mixed.

Distributed (torchrun, `szflow.remote.ddp`): every rank draws the same global batches and keeps its
`rank_slice`, gradients are averaged by DDP, rank 0 alone validates and writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from szflow.config import Params
from szflow.errors import CheckpointError, SzflowError
from szflow.io_utils import atomic_write_json, remove_stale_temporaries
from szflow.train.averaging import WeightAverage
from szflow.train.losses import masked_loss
from szflow.train.schedule import WarmupCosine
from szflow.train.split import ValidationSplit, split_by_patient
from szflow.train.state import capture_rng_state, restore_rng_state, seed_everything

log = logging.getLogger("szflow.train")

CACHE_DIR = Path("data/cache")
BEST_PATH = Path("models/best.pt")
LAST_PATH = Path("models/last.pt")
BASELINE_PATH = Path("models/baseline.json")
METRICS_PATH = Path("metrics/train.json")
CURVES_DIR = Path("metrics/train_curves")

# Sections of params.yaml that define a training run, and the hardware keys that change its numbers.
RUN_SECTIONS = ("model", "train", "sampler", "preprocess")
RUN_HARDWARE_KEYS = ("train_batch_size", "precision", "grad_accumulation")


def run_params_hash(params: Params, precision: str | None = None) -> str:
    """Hash of everything that makes two training runs the same run (resume only within one).

    `precision` is the resolved one (`resolve_precision`), so `auto` resumed on a machine that
    resolves it differently starts a fresh run rather than mixing precisions.
    """
    hardware = {key: getattr(params.hardware, key) for key in RUN_HARDWARE_KEYS}
    if precision is not None:
        hardware["precision"] = precision
    payload = {"sections": params.section_hash(*RUN_SECTIONS), "hardware": hardware}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def sensitivity_key(fa_per_24h: int) -> str:
    """Metric name of the selection sensitivity, e.g. 'val_sensitivity_at_10fa' (never a float key)."""
    return f"val_sensitivity_at_{int(fa_per_24h)}fa"


# ----------------------------------------------------------------------------- selection
@dataclass
class Selection:
    """Best-so-far bookkeeping for best.pt and early stopping (saved in last.pt)."""

    best_score: list[float] | None = None  # [sensitivity at <= target FA/24h, AUROC]
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    evals: int = 0
    evals_without_improvement: int = 0

    @staticmethod
    def score_of(metrics: dict[str, float], sens_key: str) -> list[float]:
        """Sensitivity first, AUROC as the tie-break; NaN (no seizures in validation) ranks lowest."""
        def clean(value: float) -> float:
            return -math.inf if value is None or math.isnan(value) else float(value)

        return [clean(metrics[sens_key]), clean(metrics["val_auroc"])]

    def update(self, step: int, metrics: dict[str, float], sens_key: str) -> bool:
        """Record one evaluation; True when it beats every earlier one (strictly)."""
        score = self.score_of(metrics, sens_key)
        self.evals += 1
        if self.best_score is None or tuple(score) > tuple(self.best_score):
            self.best_score, self.best_step, self.best_metrics = score, step, dict(metrics)
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        return False

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_step": self.best_step, "best_metrics": self.best_metrics,
                "evals": self.evals, "evals_without_improvement": self.evals_without_improvement}

    @classmethod
    def from_state(cls, state: dict) -> Selection:
        return cls(best_score=None if state["best_score"] is None else list(state["best_score"]),
                   best_step=int(state["best_step"]), best_metrics=dict(state["best_metrics"]),
                   evals=int(state["evals"]), evals_without_improvement=int(state["evals_without_improvement"]))


def selection_target(tracks: Sequence, fa_per_24h: float) -> float:
    """The FA/24h bound the selection sensitivity is read at: `fa_per_24h`, or one false alarm's worth
    when the validation recordings are too short for that (under 86,400 / fa_per_24h s: 2.4 h for
    10 FA/24h). Otherwise a single false alarm already exceeds the bound, the sensitivity is 0 at
    every setting with any alarm, and best.pt freezes at whichever early step happened to raise none."""
    total_s = math.fsum(float(t.duration_s) for t in tracks)
    one_alarm = 1.0 / total_s * 86_400.0 if total_s > 0 else math.inf
    return max(float(fa_per_24h), one_alarm)


def validation_metrics(tracks: Sequence, params: Params) -> dict[str, float]:
    """Scores of validation tracks with the dev/eval scorer: the best OVLP sensitivity over the
    post-processing grid at <= `selection_target` FA/24h (0 when no setting gets there), its
    FA/24h and threshold, and frame AUROC. String keys only."""
    from szflow.scoring import auroc, target_key, tune_operating_points

    target = selection_target(tracks, params.train.selection_fa_per_24h)
    points = tune_operating_points(tracks, [target], **params.eval.tuning_grid())
    point = points[target_key(target)]
    feasible = bool(point["feasible"])
    return {
        sensitivity_key(params.train.selection_fa_per_24h): float(point["sensitivity"]) if feasible else 0.0,
        "val_fa_per_24h": float(point["fa_per_24h"]),
        "val_threshold": float(point["threshold"]),
        "val_selection_fa_per_24h": target,
        "val_auroc": float(auroc(tracks)),
    }


# ----------------------------------------------------------------------------- data
class GlobalBatches:
    """Batch sampler: `global_batch` consecutive draws of the training sampler per batch, of which this
    rank keeps its slice. Every rank draws the same sequence, so N ranks reproduce one process."""

    def __init__(self, sampler, global_batch: int, part: slice):
        self.sampler = sampler
        self.global_batch = global_batch
        self.part = part

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        while True:  # the loop stops by step count; the sampler wraps into a new epoch if needed
            draws = iter(self.sampler)
            batch: list[tuple[int, int]] = []
            for item in draws:
                batch.append(item)
                if len(batch) == self.global_batch:
                    yield batch[self.part]
                    batch = []


def _to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    non_blocking = device.type == "cuda"
    return (batch["x"].to(device, non_blocking=non_blocking), batch["y"].to(device, non_blocking=non_blocking),
            batch["valid"].to(device, non_blocking=non_blocking))


# ----------------------------------------------------------------------------- the stage
@dataclass
class _Context:
    params: Params
    workdir: Path
    device: torch.device
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def path(self, relative: Path) -> Path:
        return self.workdir / relative


def _try_resume(ctx: _Context, params_hash: str) -> Any | None:
    """The last.pt checkpoint to continue from, or None (with a log line saying why not)."""
    from szflow.model.checkpoint import load_checkpoint

    last = ctx.path(LAST_PATH)
    if not last.exists():
        return None
    try:
        ckpt = load_checkpoint(last, expected_config=ctx.params.model)
    except CheckpointError as exc:
        log.warning("not resuming: %s; starting a fresh run (it will replace %s)", exc, LAST_PATH)
        return None
    if ckpt.params_hash != params_hash:
        log.warning("not resuming: %s was written with params hash %s, this run's is %s (model/train/sampler/"
                    "preprocess or batch/precision/accumulation changed); starting a fresh run",
                    LAST_PATH, ckpt.params_hash, params_hash)
        return None
    if not ckpt.training_state:
        log.warning("not resuming: %s holds no training state; starting a fresh run", LAST_PATH)
        return None
    return ckpt


def _fit_baseline(ctx: _Context, store, split: ValidationSplit) -> tuple[dict[str, float], dict]:
    """Fit the classical baseline on the training recordings (rank 0 saves it); its validation AUROC
    (rank 0 only) and its per-frame scores of the training recordings (for hard background windows)."""
    from szflow.baseline import baseline_tracks, fit_baseline_with_scores, save_baseline
    from szflow.scoring import auroc

    t0 = time.perf_counter()
    rate = ctx.params.model.frame_rate_hz
    baseline, scores = fit_baseline_with_scores(store, split.train_recordings, rate)
    if not ctx.is_main:
        return {}, scores
    val_auroc = float(auroc(baseline_tracks(store, split.val_recordings, baseline, rate)))
    baseline.fit_info["val_frame_auroc"] = val_auroc
    save_baseline(ctx.path(BASELINE_PATH), baseline)
    log.info("baseline: fitted on %d recordings in %.1f s, validation frame AUROC %.3f",
             len(split.train_recordings), time.perf_counter() - t0, val_auroc)
    return {"baseline_val_auroc": val_auroc}, scores


def _hard_background_runs(ctx: _Context, store, split: ValidationSplit, scores: dict) -> list:
    from szflow.train.hard_negatives import hard_background_runs

    sampler_cfg = ctx.params.sampler
    runs, info = hard_background_runs(
        store, split.train_recordings, scores, window_s=sampler_cfg.window_s,
        frame_rate_hz=ctx.params.model.frame_rate_hz, top_fraction=sampler_cfg.hard_background_top_fraction,
    )
    log.info("hard background windows: %d runs (%d window starts) around %d background frames with a "
             "baseline score >= %s (the top %.1f %%)", info["runs"], info["windows"], info["flagged_frames"],
             "n/a" if info["threshold"] is None else f"{info['threshold']:.3f}",
             100 * sampler_cfg.hard_background_top_fraction)
    return runs


def run_train_stage(
    params: Params,
    workdir: str | Path = Path("."),
    *,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train, validate, checkpoint; return the summary also written to metrics/train.json.

    `on_step(step, loss)` runs after every optimizer step (after that step's evaluation and
    checkpoint); tests use it to interrupt a run. Raises SzflowError on a non-finite loss, naming
    the step; the last checkpoint written before it stays as it was.
    """
    from szflow.cache import SplitStore, TrainingWindowSampler
    from szflow.cache.dataset import TrainingWindowDataset, dataloader_kwargs
    from szflow.inference import autocast, predict_tracks, resolve_device, resolve_precision
    from szflow.model import Detector
    from szflow.model.checkpoint import save_checkpoint
    from szflow.remote.ddp import dist_info, rank_slice
    from szflow.train.logging import RunLogger, resolve_wandb_mode

    t_start = time.perf_counter()
    workdir = Path(workdir)
    hw, tc = params.hardware, params.train
    info = dist_info()
    device = resolve_device(hw.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    ctx = _Context(params, workdir, device, info.rank, info.world_size)
    distributed = info.enabled and torch.distributed.is_available() and torch.distributed.is_initialized()
    wandb_mode = resolve_wandb_mode(hw.wandb_mode) if ctx.is_main else "disabled"

    store = SplitStore.open(workdir / CACHE_DIR, "train")
    split = split_by_patient(store.index, tc.val_fraction, tc.val_seed)
    log.info("validation split by patient: %d train patients (%d recordings), %d validation patients "
             "(%d recordings)", len(split.train_patients), len(split.train_recordings),
             len(split.val_patients), len(split.val_recordings))
    summary: dict[str, Any] = {}
    hard_runs: list = []
    if ctx.is_main:
        remove_stale_temporaries(ctx.path(LAST_PATH).parent)  # a killed checkpoint save leaves ~240 MB
    # Every rank fits when it needs the scores (the fit is deterministic, so all ranks draw the same
    # hard windows); only rank 0 saves the baseline and scores validation.
    if ctx.is_main or params.sampler.hard_background_weight > 0:
        fitted, baseline_scores = _fit_baseline(ctx, store, split)
        summary.update(fitted)
        if params.sampler.hard_background_weight > 0:
            hard_runs = _hard_background_runs(ctx, store, split, baseline_scores)

    precision = resolve_precision(hw.precision, device)
    params_hash = run_params_hash(params, precision)
    global_batch = hw.train_batch_size
    part = rank_slice(global_batch, info.rank, info.world_size)
    windows_per_step = global_batch * hw.grad_accumulation

    seed_everything(tc.seed)
    model = Detector(params.model, mamba_impl=hw.mamba_impl).to(device)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases, norms, SSM A/D/dt: no weight decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr)
    scheduler = WarmupCosine(optimizer, tc.warmup_steps, tc.max_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    average = WeightAverage(model, tc.ema_decay) if tc.ema_decay > 0 else None
    scored_model = average.module if average is not None else model  # what validation and best.pt see
    train_model: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = TrainingWindowSampler(
        store, split.train_recordings, window_s=params.sampler.window_s,
        seizure_weight=params.sampler.seizure_weight, partial_weight=params.sampler.partial_weight,
        background_weight=params.sampler.background_weight, seed=tc.seed,
        num_windows=tc.max_steps * windows_per_step,
        hard_background_weight=params.sampler.hard_background_weight, hard_background_runs=hard_runs,
    )
    log.info("training windows per class %s, drawn with probabilities %s", sampler.class_totals_dict(),
             {k: round(v, 3) for k, v in sampler.class_probabilities().items()})

    step, windows_seen, train_time_s = 0, 0, 0.0
    selection = Selection()
    finished = stopped_early = False
    wandb_run_id: str | None = None
    ckpt = _try_resume(ctx, params_hash)
    if ckpt is not None:
        state = ckpt.training_state
        try:
            sampler.load_state_dict(state["sampler"])
        except SzflowError as exc:
            log.warning("not resuming: %s; starting a fresh run", exc)
            ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt.state_dict)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if average is not None:
            average.load_state_dict(state["ema"])
        selection = Selection.from_state(state["selection"])
        step, windows_seen = ckpt.step, int(state["windows_seen"])
        train_time_s = float(state["train_time_s"])
        finished, stopped_early = bool(state["finished"]), bool(state["stopped_early"])
        wandb_run_id = state.get("wandb_run_id") or None
        log.info("resuming from %s at step %d (best so far: step %d)", LAST_PATH, step, selection.best_step)
    elif ctx.is_main:
        # A best.pt of another run must not survive into this one.
        ctx.path(BEST_PATH).unlink(missing_ok=True)
    resumed_from = step if ckpt is not None else None

    dataset = TrainingWindowDataset(store, window_s=params.sampler.window_s,
                                    frame_rate_hz=params.model.frame_rate_hz)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=GlobalBatches(sampler, global_batch, part),
        # Own generator: creating the iterator must not draw from the global RNG (resume exactness).
        generator=torch.Generator(), **dataloader_kwargs(hw),
    )
    batches = iter(loader)
    if ckpt is not None:
        # Restored after every object that draws at construction (model init, loader), so the
        # steps after this point see exactly the random numbers of the uninterrupted run.
        restore_rng_state(ckpt.training_state["rng"])

    sens_key = sensitivity_key(tc.selection_fa_per_24h)
    logger = None
    if ctx.is_main:
        config = {"params_hash": params_hash, "model": params.model.model_dump(mode="json"),
                  "train": tc.model_dump(mode="json"), "sampler": params.sampler.model_dump(mode="json"),
                  "hardware": hw.model_dump(mode="json"), "mamba_impl_used": model.mamba_impl_used}
        logger = RunLogger(workdir / CURVES_DIR, wandb_mode=wandb_mode, config=config, resume_step=resumed_from,
                           wandb_run_id=wandb_run_id, wandb_dir=workdir)
        wandb_run_id = logger.wandb_run_id

    def training_state() -> dict:
        return {
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "sampler": sampler.state_dict(position=windows_seen),
            "ema": average.state_dict() if average is not None else None,
            "rng": capture_rng_state(), "selection": selection.state_dict(), "windows_seen": windows_seen,
            "train_time_s": train_time_s, "finished": finished, "stopped_early": stopped_early,
            "wandb_run_id": wandb_run_id or "",
        }

    last_saved = f"step {step}" if ckpt is not None else "none written yet"

    def save_last() -> None:
        nonlocal last_saved
        last_saved = f"step {step}"
        if ctx.is_main:
            save_checkpoint(ctx.path(LAST_PATH), model=model, model_config=params.model, step=step,
                            metrics=dict(selection.best_metrics), params_hash=params_hash,
                            training_state=training_state())

    def evaluate() -> bool:
        """Validate on rank 0; True when training should stop early (same answer on every rank)."""
        stop = False
        if ctx.is_main:
            t0 = time.perf_counter()
            tracks = predict_tracks(
                scored_model, store, split.val_recordings, window_s=params.sampler.window_s,
                overlap_s=params.sampler.inference_overlap_s, batch_size=hw.inference_batch_size,
                device=device, precision=precision, frame_rate_hz=params.model.frame_rate_hz,
                progress=False,
            )
            metrics = validation_metrics(tracks, params)
            improved = selection.update(step, metrics, sens_key)
            if improved:
                save_checkpoint(ctx.path(BEST_PATH), model=scored_model, model_config=params.model, step=step,
                                metrics={**metrics, "step": step}, params_hash=params_hash)
            logger.log(step, {"val/auroc": metrics["val_auroc"], f"val/{sens_key[4:]}": metrics[sens_key],
                              "val/fa_per_24h": metrics["val_fa_per_24h"],
                              "val/threshold": metrics["val_threshold"]})
            logger.flush()
            stop = selection.evals_without_improvement >= tc.patience_evals
            log.info("step %d validation: AUROC %.4f, sensitivity %.3f at %.2f FA/24h (<= %.2f, threshold %.2f)%s "
                     "[%.1f s]", step, metrics["val_auroc"], metrics[sens_key], metrics["val_fa_per_24h"],
                     metrics["val_selection_fa_per_24h"], metrics["val_threshold"], " *best*" if improved else "",
                     time.perf_counter() - t0)
        if distributed:
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    from tqdm.auto import tqdm

    bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step",
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    failed = True
    try:
        while not finished and step < tc.max_steps:
            t0 = time.perf_counter()
            train_model.train()
            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=device)
            for micro in range(hw.grad_accumulation):
                x, y, valid = _to_device(next(batches), device)
                sync = not distributed or micro == hw.grad_accumulation - 1
                context = train_model.no_sync() if not sync else contextlib.nullcontext()
                with context:
                    with autocast(device, precision):
                        logits = train_model(x, None if bool(valid.all()) else valid)
                    loss = masked_loss(logits, y, valid, kind=tc.loss, pos_weight=tc.pos_weight,
                                       focal_gamma=tc.focal_gamma) / hw.grad_accumulation
                    scaler.scale(loss).backward()
                loss_sum += loss.detach()
            if distributed:
                torch.distributed.all_reduce(loss_sum)
                loss_sum /= ctx.world_size
            loss_value = float(loss_sum)
            if not math.isfinite(loss_value):
                raise SzflowError(
                    f"training loss is {loss_value} at step {step + 1}; stopped. The last good checkpoint "
                    f"({LAST_PATH}, {last_saved}) is kept; lower train.lr or check the data")
            scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip))
            lr = scheduler.get_last_lr()[0]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if average is not None:
                average.update(model)
            step += 1
            windows_seen += windows_per_step
            dt = time.perf_counter() - t0
            train_time_s += dt
            rate = windows_per_step / dt
            if logger is not None:
                logger.log(step, {"train/loss": loss_value, "train/lr": lr, "train/grad_norm": grad_norm},
                           timings={"train/windows_per_s": rate})
            bar.set_postfix(loss=f"{loss_value:.4f}", win_s=f"{rate:.1f}", refresh=False)
            bar.update(1)

            if step % tc.eval_every_steps == 0 or step == tc.max_steps:
                stopped_early = evaluate() and step < tc.max_steps
            finished = step >= tc.max_steps or stopped_early
            if finished or step % tc.checkpoint_every_steps == 0:
                save_last()
            if stopped_early:
                log.info("early stop at step %d: %d evaluations without improvement", step,
                         selection.evals_without_improvement)
            if on_step is not None:
                on_step(step, loss_value)
        failed = False
    finally:
        bar.close()
        if logger is not None and failed:
            logger.close(failed=True)

    if selection.best_score is None and ctx.is_main:
        raise SzflowError("training ended without a validation evaluation; no best.pt was written")
    summary.update({
        "best_step": selection.best_step,
        "val_auroc": selection.best_metrics.get("val_auroc", float("nan")),
        sens_key: selection.best_metrics.get(sens_key, float("nan")),
        "val_fa_per_24h": selection.best_metrics.get("val_fa_per_24h", float("nan")),
        "val_threshold": selection.best_metrics.get("val_threshold", float("nan")),
        "val_selection_fa_per_24h": selection.best_metrics.get("val_selection_fa_per_24h", float("nan")),
        "steps": step,
        "stopped_early": stopped_early,
        "evaluations": selection.evals,
        "windows_seen": windows_seen,
        "windows_per_s": windows_seen / train_time_s if train_time_s > 0 else float("nan"),
        "train_time_s": train_time_s,
        "wall_time_s": time.perf_counter() - t_start,
        "resumed_from_step": resumed_from,
        "mamba_impl": model.mamba_impl_used,
        "device": str(device),
        "precision": precision,
        "train_batch_size": global_batch,
        "grad_accumulation": hw.grad_accumulation,
        "world_size": ctx.world_size,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_patients": len(split.train_patients),
        "val_patients": len(split.val_patients),
        "train_recordings": len(split.train_recordings),
        "val_recordings": len(split.val_recordings),
        "params_hash": params_hash,
    })
    if ctx.is_main:
        atomic_write_json(ctx.path(METRICS_PATH), _jsonable(summary))
        logger.summary({k: v for k, v in summary.items() if isinstance(v, int | float | str)})
        logger.close()
        log.info("training done: best step %d, validation AUROC %.4f, %s %.3f; %.1f windows/s",
                 summary["best_step"], summary["val_auroc"], sens_key, summary[sens_key], summary["windows_per_s"])
    return summary


def _jsonable(obj: Any) -> Any:
    """NaN/inf become None in the JSON summary (strict JSON readers reject NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
