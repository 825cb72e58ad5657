"""Training: the Detector on balanced windows of the train cache, selected on a validation split of
whole patients scored like dev/eval.

`Trainer(params, store, paths)` sets a run up (split, baseline, sampler, model, optimizer, schedule,
scaler, resume); `fit()` is the loop, to be read top to bottom: batch -> electrode dropout -> loss ->
backward -> clip -> step -> schedule, and every so many steps validate / checkpoint / log.

Outputs (`TrainPaths`):
  best        weights at the best validation selection metric (no training state); best and last
              record the training data (`training_data`: source, corpus fingerprint, recordings, hours)
  last        every `checkpoint_every_steps` and at the end, with optimizer, scheduler, scaler,
              sampler position, RNG states and the selection bookkeeping
  baseline    the classical baseline, fitted on the same training recordings
  metrics     final and best metrics (JSON)
  curves      DVCLive curves (per-step loss, lr, gradient norm; per-eval validation scores)

Resume: when `last` exists and was written by a run with the same params hash (model, train,
sampler and preprocess sections, and the hardware keys that change the arithmetic: batch size,
precision, gradient accumulation), training continues from it and ends with the same weights as an
uninterrupted run (bit-exact on CPU). Any other `last` is ignored with a log line saying why, and a
fresh run replaces it: runs are never mixed. So is a `last` whose run already validated when `best`
is missing or older than the best step it names: best.pt is written only when validation improves,
so that run could never write it again.

Distributed (torchrun, `szflow.train.distributed`): every rank draws the same global batches and
keeps its `rank_slice`, gradients are averaged by DDP, rank 0 alone validates and writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from szflow.baseline import baseline_tracks, fit_baseline_with_scores, save_baseline
from szflow.cache import SplitStore, TrainingWindowSampler
from szflow.cache.dataset import TrainingWindowDataset, dataloader_kwargs
from szflow.config import Params, TrainConfig
from szflow.errors import CheckpointError, SzflowError
from szflow.inference import autocast, predict_tracks, resolve_device, resolve_precision
from szflow.io_utils import atomic_write_json, remove_stale_temporaries
from szflow.model import Checkpoint, Detector, load_checkpoint, save_checkpoint
from szflow.scoring import auroc
from szflow.train.distributed import (
    DistInfo,
    GlobalBatches,
    broadcast_flag,
    dist_info,
    mean_over_ranks,
    process_group_active,
    rank_slice,
    wrap_model,
)
from szflow.train.electrode_dropout import batch_dropped, drop_electrodes
from szflow.train.hard_negatives import hard_background_runs
from szflow.train.logging import RunLogger, resolve_wandb_mode
from szflow.train.losses import masked_loss
from szflow.train.schedule import WarmupCosine
from szflow.train.selection import Selection, sensitivity_key, validation_metrics
from szflow.train.split import split_by_patient
from szflow.train.state import capture_rng_state, restore_rng_state, seed_everything

log = logging.getLogger("szflow.train")

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


@dataclass(frozen=True)
class TrainPaths:
    """Where a run writes; `last` is also where it resumes from. W&B keeps its run files under `wandb_dir`."""

    best: Path
    last: Path
    baseline: Path
    metrics: Path
    curves: Path
    wandb_dir: Path


def training_device(hardware_device: str, info: DistInfo) -> torch.device:
    """The profile's device; under torchrun on CUDA, this rank's GPU."""
    device = resolve_device(hardware_device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    return device


def build_optimizer(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (biases, norms, SSM A/D/dt have none)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr)


def to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    """x, y, valid, present of a batch on `device`."""
    non_blocking = device.type == "cuda"
    return tuple(batch[key].to(device, non_blocking=non_blocking) for key in ("x", "y", "valid", "present"))


def training_data(params: Params, store: SplitStore, train_recordings: list, val_recordings: list) -> dict:
    """What a model trained on `store` has seen, as checkpoints record it (`szflow detect` reads
    `source` to warn about a model that has only seen synthetic EEG)."""
    manifest = store.manifest
    return {
        "source": params.data.source, "root": params.data.root,
        # The cache's fingerprint of every preprocessed input (metadata and array sizes).
        "corpus_fingerprint": str(manifest.get("inputs", "")),
        "preprocess_params_hash": str(manifest.get("preprocess_params_hash", "")),
        "recordings": len(store), "hours": float(manifest.get("hours", 0.0)),
        "train_recordings": len(train_recordings), "val_recordings": len(val_recordings),
    }


def resumable_checkpoint(path: Path, params: Params, params_hash: str) -> Checkpoint | None:
    """The last.pt checkpoint to continue from, or None (with a log line saying why not)."""
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path, expected_config=params.model)
    except CheckpointError as exc:
        log.warning("not resuming: %s; starting a fresh run (it will replace %s)", exc, path)
        return None
    if ckpt.params_hash != params_hash:
        log.warning("not resuming: %s was written with params hash %s, this run's is %s (model/train/sampler/"
                    "preprocess or batch/precision/accumulation changed); starting a fresh run",
                    path, ckpt.params_hash, params_hash)
        return None
    if not ckpt.training_state:
        log.warning("not resuming: %s holds no training state; starting a fresh run", path)
        return None
    return ckpt


def jsonable(obj: Any) -> Any:
    """NaN/inf become None in the JSON summary (strict JSON readers reject NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


class Trainer:
    """One training run: set up (or resumed from `paths.last`) by the constructor, run by `fit`."""

    def __init__(self, params: Params, store: SplitStore, paths: TrainPaths, *, progress: bool = True):
        self.t_start = time.perf_counter()
        self.params, self.store, self.paths, self.progress = params, store, paths, progress
        hw, tc = params.hardware, params.train
        self.dist = dist_info()
        self.device = training_device(hw.device, self.dist)
        self.distributed = process_group_active(self.dist)
        self.is_main = self.dist.is_main
        self.wandb_mode = resolve_wandb_mode(hw.wandb_mode) if self.is_main else "disabled"

        self.split = split_by_patient(store.index, tc.val_fraction, tc.val_seed)
        log.info("validation split by patient: %d train patients (%d recordings), %d validation patients "
                 "(%d recordings)", len(self.split.train_patients), len(self.split.train_recordings),
                 len(self.split.val_patients), len(self.split.val_recordings))
        self.summary: dict[str, Any] = {}
        if self.is_main:
            remove_stale_temporaries(paths.last.parent)  # a killed checkpoint save leaves ~240 MB
        hard_runs = self._fit_baseline()

        self.precision = resolve_precision(hw.precision, self.device)
        self.params_hash = run_params_hash(params, self.precision)
        part = rank_slice(hw.train_batch_size, self.dist.rank, self.dist.world_size)
        # Index of this rank's first window within each global batch (electrode dropout is keyed by it).
        self.part_first = part.indices(hw.train_batch_size)[0]
        self.training_data = training_data(params, store, self.split.train_recordings, self.split.val_recordings)
        self.windows_per_step = hw.train_batch_size * hw.grad_accumulation
        self.sens_key = sensitivity_key(tc.selection_fa_per_24h)

        seed_everything(tc.seed)
        self.model = Detector(params.model, mamba_impl=hw.mamba_impl).to(self.device)
        self.optimizer = build_optimizer(self.model, tc)
        self.scheduler = WarmupCosine(self.optimizer, tc.warmup_steps, tc.max_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.train_model = wrap_model(self.model, self.device, self.distributed)
        self.sampler = self._build_sampler(hard_runs)

        # The run's progress: what last.pt carries beside the weights and optimizer.
        self.step, self.windows_seen, self.train_time_s = 0, 0, 0.0
        self.selection = Selection()
        self.finished = self.stopped_early = False
        self.wandb_run_id: str | None = None
        self.resumed_curves: list | None = None
        ckpt = self._resume()
        self.resumed_from = self.step if ckpt is not None else None
        self.last_saved = f"step {self.step}" if ckpt is not None else "none written yet"

        dataset = TrainingWindowDataset(store, window_s=params.sampler.window_s,
                                        frame_rate_hz=params.model.frame_rate_hz)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=GlobalBatches(self.sampler, hw.train_batch_size, part),
            # Own generator: creating the iterator must not draw from the global RNG (resume exactness).
            generator=torch.Generator(), **dataloader_kwargs(hw),
        )
        self.batches = iter(loader)
        if ckpt is not None:
            # Restored after every object that draws at construction (model init, loader), so the
            # steps after this point see exactly the random numbers of the uninterrupted run.
            restore_rng_state(ckpt.training_state["rng"])
        self.logger = self._open_logger() if self.is_main else None

    # ------------------------------------------------------------------------- the loop
    def fit(self, on_step: Callable[[int, float], None] | None = None) -> dict:
        """Train, validate, checkpoint; return the summary also written to `paths.metrics`.

        `on_step(step, loss)` runs after every optimizer step (after that step's evaluation and
        checkpoint); tests use it to interrupt a run. Raises SzflowError on a non-finite loss, naming
        the step; the last checkpoint written before it stays as it was.
        """
        tc = self.params.train
        bar = tqdm(total=tc.max_steps, initial=self.step, desc="train", unit="step",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        failed = True
        try:
            while not self.finished and self.step < tc.max_steps:
                t0 = time.perf_counter()
                loss = self.forward_backward()
                self.scaler.unscale_(self.optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip))
                lr = self.scheduler.get_last_lr()[0]
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                self.windows_seen += self.windows_per_step
                dt = time.perf_counter() - t0
                self.train_time_s += dt
                self.log_step(loss, lr, grad_norm, self.windows_per_step / dt, bar)

                if self.step % tc.eval_every_steps == 0 or self.step == tc.max_steps:
                    self.stopped_early = self.validate() and self.step < tc.max_steps
                self.finished = self.step >= tc.max_steps or self.stopped_early
                if self.finished or self.step % tc.checkpoint_every_steps == 0:
                    self.save_last()
                if self.stopped_early:
                    log.info("early stop at step %d: %d evaluations without improvement", self.step,
                             self.selection.evals_without_improvement)
                if on_step is not None:
                    on_step(self.step, loss)
            failed = False
        finally:
            bar.close()
            if self.logger is not None and failed:
                self.logger.close(failed=True)
        return self.finish()

    def forward_backward(self) -> float:
        """One global batch (in `grad_accumulation` micro-batches) forward and backward; its mean
        loss over all ranks. Raises SzflowError when that loss is not finite."""
        hw, tc = self.params.hardware, self.params.train
        self.train_model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(hw.grad_accumulation):
            batch = next(self.batches)
            # Drawn from the batch's CPU presence, before the copy to the device (no device sync).
            first = self.windows_seen + micro * hw.train_batch_size + self.part_first
            dropped = batch_dropped(tc.seed, first, batch["present"], tc.electrode_dropout_probability,
                                    tc.electrode_dropout_max)
            x, y, valid, present = to_device(batch, self.device)
            x, present = drop_electrodes(x, present, dropped)
            # DDP all-reduces gradients on the last micro-batch only.
            sync = not self.distributed or micro == hw.grad_accumulation - 1
            with contextlib.nullcontext() if sync else self.train_model.no_sync():
                with autocast(self.device, self.precision):
                    logits = self.train_model(x, None if bool(valid.all()) else valid,
                                              None if bool(present.all()) else present)
                loss = masked_loss(logits, y, valid, pos_weight=tc.pos_weight) / hw.grad_accumulation
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
        loss_value = float(mean_over_ranks(loss_sum, self.dist.world_size, self.distributed))
        if not math.isfinite(loss_value):
            raise SzflowError(
                f"training loss is {loss_value} at step {self.step + 1}; stopped. The last good checkpoint "
                f"({self.paths.last}, {self.last_saved}) is kept; lower train.lr or check the data")
        return loss_value

    # ------------------------------------------------------------------------- validate, checkpoint, log
    def validate(self) -> bool:
        """Validate on rank 0 (best.pt when it improves); True when training should stop early (the
        same answer on every rank)."""
        stop = False
        if self.is_main:
            t0 = time.perf_counter()
            params, hw = self.params, self.params.hardware
            tracks = predict_tracks(
                self.model, self.store, self.split.val_recordings, window_s=params.sampler.window_s,
                overlap_s=params.sampler.inference_overlap_s, batch_size=hw.inference_batch_size,
                device=self.device, precision=self.precision, frame_rate_hz=params.model.frame_rate_hz,
                progress=False,
            )
            metrics = validation_metrics(tracks, params)
            improved = self.selection.update(self.step, metrics, self.sens_key)
            if improved:
                save_checkpoint(self.paths.best, model=self.model, model_config=params.model, step=self.step,
                                metrics={**metrics, "step": self.step}, params_hash=self.params_hash,
                                training_data=self.training_data)
            self.log_validation(metrics)
            stop = self.selection.evals_without_improvement >= params.train.patience_evals
            log.info("step %d validation: AUROC %.4f, sensitivity %.3f at %.2f FA/24h (<= %.2f, threshold %.2f)%s "
                     "[%.1f s]", self.step, metrics["val_auroc"], metrics[self.sens_key], metrics["val_fa_per_24h"],
                     metrics["val_selection_fa_per_24h"], metrics["val_threshold"], " *best*" if improved else "",
                     time.perf_counter() - t0)
        return broadcast_flag(stop, self.device, self.distributed)

    def save_last(self) -> None:
        self.last_saved = f"step {self.step}"
        if self.is_main:
            save_checkpoint(self.paths.last, model=self.model, model_config=self.params.model, step=self.step,
                            metrics=dict(self.selection.best_metrics), params_hash=self.params_hash,
                            training_state=self.training_state(), training_data=self.training_data)

    def training_state(self) -> dict:
        """Everything beside the weights that a resumed run needs to continue bit-exactly."""
        return {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "sampler": self.sampler.state_dict(position=self.windows_seen),
            "rng": capture_rng_state(), "selection": self.selection.state_dict(),
            "windows_seen": self.windows_seen, "train_time_s": self.train_time_s, "finished": self.finished,
            "stopped_early": self.stopped_early, "wandb_run_id": self.wandb_run_id or "",
            # The curves logged so far: a resumed run rewrites them (szflow.train.logging.RunLogger).
            "curves": self.logger.history if self.logger is not None else [],
        }

    def log_step(self, loss: float, lr: float, grad_norm: float, windows_per_s: float, bar: tqdm) -> None:
        if self.logger is not None:
            self.logger.log(self.step, {"train/loss": loss, "train/lr": lr, "train/grad_norm": grad_norm},
                            timings={"train/windows_per_s": windows_per_s})
        bar.set_postfix(loss=f"{loss:.4f}", win_s=f"{windows_per_s:.1f}", refresh=False)
        bar.update(1)

    def log_validation(self, metrics: dict[str, float]) -> None:
        self.logger.log(self.step, {"val/auroc": metrics["val_auroc"],
                                    f"val/{self.sens_key[4:]}": metrics[self.sens_key],
                                    "val/fa_per_24h": metrics["val_fa_per_24h"],
                                    "val/threshold": metrics["val_threshold"]})
        self.logger.flush()

    # ------------------------------------------------------------------------- set-up and summary
    def _fit_baseline(self) -> list:
        """Fit the classical baseline on the training recordings; rank 0 scores it on validation and
        saves it. Returns the hard background runs drawn around its highest-scored background frames
        (none when the sampler gives them no weight)."""
        sampler_cfg, rate = self.params.sampler, self.params.model.frame_rate_hz
        hard = sampler_cfg.hard_background_weight > 0
        # Every rank fits when it needs the scores (the fit is deterministic, so all ranks draw the
        # same hard windows); only rank 0 saves the baseline and scores validation.
        if not (self.is_main or hard):
            return []
        t0 = time.perf_counter()
        baseline, scores = fit_baseline_with_scores(self.store, self.split.train_recordings, rate)
        if self.is_main:
            val_auroc = float(auroc(baseline_tracks(self.store, self.split.val_recordings, baseline, rate)))
            baseline.fit_info["val_frame_auroc"] = val_auroc
            save_baseline(self.paths.baseline, baseline)
            log.info("baseline: fitted on %d recordings in %.1f s, validation frame AUROC %.3f",
                     len(self.split.train_recordings), time.perf_counter() - t0, val_auroc)
            self.summary["baseline_val_auroc"] = val_auroc
        if not hard:
            return []
        runs, info = hard_background_runs(
            self.store, self.split.train_recordings, scores, window_s=sampler_cfg.window_s,
            frame_rate_hz=rate, top_fraction=sampler_cfg.hard_background_top_fraction,
        )
        log.info("hard background windows: %d runs (%d window starts) around %d background frames with a "
                 "baseline score >= %s (the top %.1f %%)", info["runs"], info["windows"], info["flagged_frames"],
                 "n/a" if info["threshold"] is None else f"{info['threshold']:.3f}",
                 100 * sampler_cfg.hard_background_top_fraction)
        return runs

    def _build_sampler(self, hard_runs: list) -> TrainingWindowSampler:
        cfg, tc = self.params.sampler, self.params.train
        sampler = TrainingWindowSampler(
            self.store, self.split.train_recordings, window_s=cfg.window_s,
            seizure_weight=cfg.seizure_weight, partial_weight=cfg.partial_weight,
            background_weight=cfg.background_weight, seed=tc.seed,
            num_windows=tc.max_steps * self.windows_per_step,
            hard_background_weight=cfg.hard_background_weight, hard_background_runs=hard_runs,
        )
        log.info("training windows per class %s, drawn with probabilities %s", sampler.class_totals_dict(),
                 {k: round(v, 3) for k, v in sampler.class_probabilities().items()})
        return sampler

    def _resume(self) -> Checkpoint | None:
        """Load the state of a resumable last.pt (the RNG is restored later); without one, remove a
        best.pt of another run so that it cannot survive into this one."""
        ckpt = resumable_checkpoint(self.paths.last, self.params, self.params_hash)
        if ckpt is not None and not self._best_matches(ckpt):
            ckpt = None
        if ckpt is not None:
            try:
                self.sampler.load_state_dict(ckpt.training_state["sampler"])
            except SzflowError as exc:
                log.warning("not resuming: %s; starting a fresh run", exc)
                ckpt = None
        if ckpt is None:
            if self.is_main:
                self.paths.best.unlink(missing_ok=True)
            return None
        state = ckpt.training_state
        self.model.load_state_dict(ckpt.state_dict)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.selection = Selection.from_state(state["selection"])
        self.step, self.windows_seen = ckpt.step, int(state["windows_seen"])
        self.train_time_s = float(state["train_time_s"])
        self.finished, self.stopped_early = bool(state["finished"]), bool(state["stopped_early"])
        self.wandb_run_id = state.get("wandb_run_id") or None
        self.resumed_curves = state.get("curves")
        log.info("resuming from %s at step %d (best so far: step %d)", self.paths.last, self.step,
                 self.selection.best_step)
        return ckpt

    def _best_matches(self, ckpt: Checkpoint) -> bool:
        """Whether best.pt belongs to the run `ckpt` continues. best.pt is written only when
        validation improves, so a resumed run whose later validations do not beat the best named in
        `ckpt` could never write it again: without it (or with another run's), start afresh."""
        best_step = int(ckpt.training_state["selection"]["best_step"])
        if ckpt.training_state["selection"]["best_score"] is None:
            return True  # no validation yet: nothing to keep
        reason = None
        try:
            best = load_checkpoint(self.paths.best, expected_config=self.params.model)
        except CheckpointError as exc:
            reason = str(exc)
        else:
            # A best.pt newer than last.pt comes from steps the resumed run replays (and rewrites).
            if best.params_hash != self.params_hash or best.step < best_step:
                reason = (f"{self.paths.best} is from step {best.step} with params hash {best.params_hash}, "
                          f"the checkpoint's best is step {best_step} with {self.params_hash}")
        if reason is not None:
            log.warning("not resuming from %s: its best checkpoint is not there (%s); starting a fresh run",
                        self.paths.last, reason)
            return False
        return True

    def _open_logger(self) -> RunLogger:
        p = self.params
        config = {"params_hash": self.params_hash, "model": p.model.model_dump(mode="json"),
                  "train": p.train.model_dump(mode="json"), "sampler": p.sampler.model_dump(mode="json"),
                  "hardware": p.hardware.model_dump(mode="json"), "mamba_impl_used": self.model.mamba_impl_used}
        logger = RunLogger(self.paths.curves, wandb_mode=self.wandb_mode, config=config,
                           resume_step=self.resumed_from, wandb_run_id=self.wandb_run_id,
                           wandb_dir=self.paths.wandb_dir, history=self.resumed_curves)
        self.wandb_run_id = logger.wandb_run_id
        return logger

    def finish(self) -> dict:
        """The run's summary (best validation scores, throughput, the run's shape); rank 0 writes it
        to `paths.metrics` and closes the logger."""
        if self.selection.best_score is None and self.is_main:
            raise SzflowError("training ended without a validation evaluation; no best.pt was written")
        best, hw, split = self.selection.best_metrics, self.params.hardware, self.split
        self.summary.update({
            "best_step": self.selection.best_step,
            **{key: best.get(key, float("nan")) for key in ("val_auroc", self.sens_key, "val_fa_per_24h",
                                                            "val_threshold", "val_selection_fa_per_24h")},
            "steps": self.step,
            "stopped_early": self.stopped_early,
            "evaluations": self.selection.evals,
            "windows_seen": self.windows_seen,
            "windows_per_s": self.windows_seen / self.train_time_s if self.train_time_s > 0 else float("nan"),
            "train_time_s": self.train_time_s,
            "wall_time_s": time.perf_counter() - self.t_start,
            "resumed_from_step": self.resumed_from,
            "mamba_impl": self.model.mamba_impl_used,
            "device": str(self.device),
            "precision": self.precision,
            "train_batch_size": hw.train_batch_size,
            "grad_accumulation": hw.grad_accumulation,
            "world_size": self.dist.world_size,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "train_patients": len(split.train_patients),
            "val_patients": len(split.val_patients),
            "train_recordings": len(split.train_recordings),
            "val_recordings": len(split.val_recordings),
            "params_hash": self.params_hash,
        })
        if self.is_main:
            atomic_write_json(self.paths.metrics, jsonable(self.summary))
            self.logger.summary({k: v for k, v in self.summary.items() if isinstance(v, int | float | str)})
            self.logger.close()
            log.info("training done: best step %d, validation AUROC %.4f, %s %.3f; %.1f windows/s",
                     self.summary["best_step"], self.summary["val_auroc"], self.sens_key,
                     self.summary[self.sens_key], self.summary["windows_per_s"])
        return self.summary
