"""Training: the stage driver, learning, bit-exact resume, best.pt selection, checkpoints, NaN guard, logging, split."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from szflow.cache import SplitStore, TrainingWindowSampler
from szflow.config import Params, load_params
from szflow.errors import SzflowError
from szflow.model import load_detector
from szflow.model.checkpoint import load_checkpoint
from szflow.remote.ddp import spawn
from szflow.scoring import ProbabilityTrack
from szflow.stages import train as train_stage
from szflow.train import trainer as train_trainer
from szflow.train.distributed import GlobalBatches, rank_slice
from szflow.train.electrode_dropout import batch_dropped, drop_electrodes, dropped_electrodes
from szflow.train.logging import RunLogger, resolve_wandb_mode
from szflow.train.losses import masked_loss
from szflow.train.schedule import WarmupCosine, warmup_cosine_factor
from szflow.train.selection import selection_target, validation_metrics
from szflow.train.split import split_by_patient
from szflow.train.state import capture_rng_state, restore_rng_state, seed_everything

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "model.n_layers": 1, "model.d_model": 16, "model.d_state": 4, "model.encoder_channels": [8, 16],
    "model.chunk_size": 16, "model.dropout": 0.1,
    "train.max_steps": 8, "train.eval_every_steps": 4, "train.checkpoint_every_steps": 2, "train.warmup_steps": 2,
    "train.lr": 3e-3, "train.val_fraction": 0.34, "train.patience_evals": 10,
    # 4 s windows (16 frames) keep each step to milliseconds.
    "sampler.window_s": 4.0, "sampler.inference_overlap_s": 1.0,
    "eval.threshold_grid": [0.2, 0.5, 0.8], "eval.smoothing_grid_s": [0.0], "eval.min_duration_grid_s": [0.0],
    "eval.merge_gap_grid_s": [0.0], "eval.hysteresis_low_grid": [None],
    "hardware.train_batch_size": 4, "hardware.inference_batch_size": 8, "hardware.precision": "fp32",
    "hardware.num_workers": 0,
    # Off in the tiny runs: the toy signal's seizure rhythm is the same on every channel, which the
    # re-referencing after a dropout removes (the real cache is common-average referenced, so it has
    # no such common mode). The resume and DDP tests turn it on (ELECTRODE_DROPOUT).
    "train.electrode_dropout_probability": 0.0,
}
ELECTRODE_DROPOUT = {"train.electrode_dropout_probability": 0.5, "train.electrode_dropout_max": 4}


def tiny_params(**overrides) -> Params:
    """params.yaml with the tiny model and run above; `overrides` are dotted keys as in load_params."""
    return load_params(REPO, hw="local", overrides={**TINY, **overrides})


@pytest.fixture
def workdir(tmp_path: Path, write_toy_store, toy_recordings) -> Path:
    write_toy_store(tmp_path / "data" / "cache", "train", toy_recordings(duration_s=20.0, seizure_s=6.0))
    return tmp_path


def _run(params: Params, workdir: Path, on_step=None) -> dict:
    store = SplitStore.open(workdir / "data" / "cache", "train")
    return train_trainer.Trainer(params, store, train_stage.train_paths(workdir), progress=False).fit(on_step)


def _curve(workdir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(workdir / "metrics" / "train_curves" / "plots" / "metrics" / f"{name}.tsv", sep="\t")


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- the loop
def test_the_stage_learns_and_writes_every_output(workdir):
    params = tiny_params(**{"train.max_steps": 24, "train.eval_every_steps": 12, "train.checkpoint_every_steps": 12})
    result = train_stage.run(params, workdir)
    loss = _curve(workdir, "train/loss")["loss"].to_numpy()
    assert len(loss) == 24
    assert loss[-6:].mean() < 0.7 * loss[:3].mean()
    for path in ("models/best.pt", "models/last.pt", "models/baseline.json", "metrics/train.json"):
        assert (workdir / path).exists(), path
    written = json.loads((workdir / "metrics" / "train.json").read_text())
    assert written["steps"] == 24 and written["mamba_impl"] == "torch"
    assert written["val_auroc"] == pytest.approx(result["val_auroc"])
    assert "val_sensitivity_at_10fa" in written and written["windows_per_s"] > 0
    assert all(isinstance(k, str) for k in written)
    val = _curve(workdir, "val/auroc")
    assert list(val["step"]) == [12, 24]


@pytest.mark.parametrize("hard_background_weight", [0.0, 0.5])
def test_kill_and_resume_is_bit_exact(tmp_path, hard_background_weight, caplog, write_toy_store, toy_recordings):
    params = tiny_params(**ELECTRODE_DROPOUT,
                         **{"train.max_steps": 10, "train.eval_every_steps": 5, "train.checkpoint_every_steps": 3,
                            "sampler.hard_background_weight": hard_background_weight,
                            "sampler.hard_background_top_fraction": 0.1})
    caplog.set_level(logging.INFO, logger="szflow.train")
    runs = {}
    for name in ("straight", "resumed"):
        root = tmp_path / name
        write_toy_store(root / "data" / "cache", "train", toy_recordings(duration_s=20.0, seizure_s=6.0))
        runs[name] = root
    _run(params, runs["straight"])

    class Killed(Exception):
        pass

    def kill(step: int, loss: float) -> None:
        if step == 7:  # between checkpoints (6 and 9): steps 7 are lost and replayed
            raise Killed

    resumed = runs["resumed"]
    with pytest.raises(Killed):
        _run(params, resumed, on_step=kill)
    assert load_checkpoint(resumed / "models" / "last.pt").step == 6
    # DVC deletes a stage's outputs (the curves among them) before it runs the stage again.
    shutil.rmtree(resumed / "metrics" / "train_curves")
    result = _run(params, resumed)
    assert result["resumed_from_step"] == 6 and result["steps"] == 10
    assert _same_weights(runs["straight"] / "models" / "last.pt", resumed / "models" / "last.pt")
    assert _same_weights(runs["straight"] / "models" / "best.pt", resumed / "models" / "best.pt")
    # The curves are whole again (the steps before the resume from last.pt), none duplicated, and
    # match the uninterrupted run.
    for name in ("train/loss", "train/lr", "val/auroc"):
        pd.testing.assert_frame_equal(_curve(runs["straight"], name), _curve(resumed, name))
    assert len(_curve(resumed, "train/loss")) == 10
    hard_lines = [r.getMessage() for r in caplog.records if "hard background windows" in r.getMessage()]
    assert bool(hard_lines) == (hard_background_weight > 0)
    if hard_background_weight:
        assert all(" 0 window starts" not in line for line in hard_lines)


# ----------------------------------------------------------------------------- electrode dropout
def test_electrode_dropout_is_deterministic_per_window_and_follows_its_settings():
    present = np.ones(19, dtype=bool)
    draws = np.stack([dropped_electrodes(3, i, present, 0.5, 4) for i in range(4000)])
    again = np.stack([dropped_electrodes(3, i, present, 0.5, 4) for i in range(4000)])
    np.testing.assert_array_equal(draws, again)  # a function of (seed, window number) alone
    assert not np.array_equal(draws, np.stack([dropped_electrodes(4, i, present, 0.5, 4) for i in range(4000)]))
    counts = draws.sum(axis=1)
    assert abs((counts > 0).mean() - 0.5) < 0.03
    assert set(np.unique(counts[counts > 0])) == {1, 2, 3, 4}
    np.testing.assert_allclose(np.bincount(counts[counts > 0])[1:] / (counts > 0).sum(), 0.25, atol=0.04)
    assert abs(draws.mean(axis=0) - draws.mean()).max() < 0.03  # every electrode alike
    assert not dropped_electrodes(3, 0, present, 0.0, 4).any()
    # Only present electrodes are dropped, and never the last one.
    few = np.zeros(19, dtype=bool)
    few[[2, 7]] = True
    for i in range(200):
        lost = dropped_electrodes(3, i, few, 1.0, 4)
        assert not (lost & ~few).any() and lost.sum() <= 1
    batch = batch_dropped(3, 10, torch.ones(2, 19, dtype=torch.bool), 0.5, 4)
    assert torch.equal(batch[1], torch.from_numpy(dropped_electrodes(3, 11, present, 0.5, 4)))


def test_dropped_electrodes_are_zeroed_absent_and_the_rest_re_referenced():
    torch.manual_seed(0)
    raw = torch.randn(2, 19, 50)
    x = raw - raw.mean(dim=1, keepdim=True)  # common average over all 19, as the cache holds it
    present = torch.ones(2, 19, dtype=torch.bool)
    dropped = torch.zeros(2, 19, dtype=torch.bool)
    dropped[0, [4, 11]] = True
    out, now = drop_electrodes(x, present, dropped)
    keep = ~dropped[0]
    assert torch.equal(now[0], keep) and now[1].all()
    assert out[0, ~keep].abs().max() == 0
    # The same common average a recording without those electrodes would have had (raw units).
    want = raw[0, keep] - raw[0, keep].mean(dim=0)
    assert (out[0, keep] - want).abs().max() <= 1e-5
    assert torch.equal(out[1], x[1])  # a window that lost nothing is untouched
    same, same_present = drop_electrodes(x, present, torch.zeros(2, 19, dtype=torch.bool))
    assert same is x and torch.equal(same_present, present)


def test_checkpoints_record_the_training_data(workdir):
    _run(tiny_params(**SHORT), workdir)
    store = SplitStore.open(workdir / "data" / "cache", "train")
    for name in ("best.pt", "last.pt"):
        data = load_checkpoint(workdir / "models" / name).training_data
        assert data["source"] == "synthetic" and data["root"] == tiny_params().data.root
        assert data["corpus_fingerprint"] == store.manifest["inputs"] and data["corpus_fingerprint"]
        assert data["recordings"] == len(store) == data["train_recordings"] + data["val_recordings"]
        assert data["hours"] == pytest.approx(store.manifest["hours"]) and data["hours"] > 0


SHORT = {"train.max_steps": 4, "train.eval_every_steps": 4, "train.checkpoint_every_steps": 2}


def test_changed_params_start_fresh_with_a_log_line(workdir, caplog):
    _run(tiny_params(**SHORT), workdir)
    with caplog.at_level(logging.INFO, logger="szflow.train"):
        result = _run(tiny_params(**SHORT, **{"train.lr": 1e-3}), workdir)
    assert result["resumed_from_step"] is None
    assert "not resuming" in caplog.text and "params hash" in caplog.text
    # A finished run with the same params resumes as finished: nothing is retrained.
    caplog.clear()
    shutil.rmtree(workdir / "metrics" / "train_curves")  # as DVC does before re-running the stage
    with caplog.at_level(logging.INFO, logger="szflow.train"):
        again = _run(tiny_params(**SHORT, **{"train.lr": 1e-3}), workdir)
    assert again["resumed_from_step"] == 4 and again["val_auroc"] == result["val_auroc"]
    # Resumed at its last step, the run still has the curves of all its steps.
    assert _curve(workdir, "train/loss")["step"].tolist() == [1, 2, 3, 4]
    assert _curve(workdir, "val/auroc")["step"].tolist() == [4]


def test_best_checkpoint_follows_the_selection_metric_and_early_stops(workdir, monkeypatch):
    # Scripted validation scores: sensitivity decides, AUROC breaks the tie at step 6.
    script = iter([
        {"val_sensitivity_at_10fa": 0.5, "val_auroc": 0.90},   # step 2: best
        {"val_sensitivity_at_10fa": 0.75, "val_auroc": 0.80},  # step 4: best (sensitivity wins)
        {"val_sensitivity_at_10fa": 0.75, "val_auroc": 0.85},  # step 6: best (AUROC tie-break)
        {"val_sensitivity_at_10fa": 0.75, "val_auroc": 0.85},  # step 8: equal is no improvement
        {"val_sensitivity_at_10fa": 0.25, "val_auroc": 0.99},  # step 10: worse -> 2nd without -> stop
        {"val_sensitivity_at_10fa": 1.0, "val_auroc": 1.0},    # never reached
    ])
    seen_steps = []

    def scripted(tracks, params):
        seen_steps.append(len(tracks))
        return {**next(script), "val_fa_per_24h": 1.0, "val_threshold": 0.5, "val_selection_fa_per_24h": 10.0}

    monkeypatch.setattr(train_trainer, "validation_metrics", scripted)
    result = _run(tiny_params(**{"train.max_steps": 20, "train.eval_every_steps": 2,
                                 "train.checkpoint_every_steps": 4, "train.patience_evals": 2}), workdir)
    assert result["best_step"] == 6 and result["stopped_early"] and result["steps"] == 10
    assert result["val_auroc"] == 0.85 and result["val_sensitivity_at_10fa"] == 0.75
    best = load_checkpoint(workdir / "models" / "best.pt")
    assert best.step == 6 and best.metrics["val_auroc"] == 0.85
    last = load_checkpoint(workdir / "models" / "last.pt")
    assert last.step == 10 and last.training_state["finished"] and last.training_state["stopped_early"]
    assert len(seen_steps) == 5


def test_validation_metrics_use_string_keys_and_the_real_scorer():
    params = tiny_params()
    perfect = ProbabilityTrack("a", np.r_[np.zeros(40), np.ones(40), np.zeros(40)].astype(np.float32), 4.0, 30.0,
                               [(10.0, 20.0)])
    metrics = validation_metrics([perfect], params)
    assert metrics["val_sensitivity_at_10fa"] == 1.0 and metrics["val_auroc"] == 1.0
    assert all(isinstance(k, str) for k in metrics)
    # Alarms everywhere: no setting reaches <= 10 FA/24h, so the selection sensitivity is 0.
    noisy = ProbabilityTrack("b", np.tile([0.0, 1.0], 60).astype(np.float32), 4.0, 30.0, [(10.0, 20.0)])
    assert validation_metrics([noisy], params)["val_sensitivity_at_10fa"] == 0.0


def test_selection_allows_one_false_alarm_when_validation_is_too_short_for_the_target():
    params = tiny_params()
    day = 86_400.0
    # 4 h: 10 FA/24h allows one false alarm (6 FA/24h) -> the target stays 10.
    assert selection_target([ProbabilityTrack("a", np.zeros(1), 4.0, 4 * 3600.0)], 10) == 10.0
    # 1 h: one false alarm is 24 FA/24h; the bound becomes one alarm, not zero alarms.
    short = [ProbabilityTrack("a", np.zeros(1), 4.0, 1800.0), ProbabilityTrack("b", np.zeros(1), 4.0, 1800.0)]
    assert selection_target(short, 10) == pytest.approx(day / 3600.0)
    # A detected seizure plus one false alarm in a 1 h validation set still counts as found.
    probs = np.zeros(4 * 3600, np.float32)
    probs[4 * 100:4 * 120] = 1.0  # the seizure
    probs[4 * 2000:4 * 2010] = 1.0  # one false alarm
    track = ProbabilityTrack("a", probs, 4.0, 3600.0, [(100.0, 120.0)])
    metrics = validation_metrics([track], params)
    assert metrics["val_sensitivity_at_10fa"] == 1.0 and metrics["val_fa_per_24h"] == pytest.approx(24.0)
    assert metrics["val_selection_fa_per_24h"] == pytest.approx(24.0)


def test_last_checkpoint_round_trips_with_training_state(workdir):
    _run(tiny_params(**SHORT), workdir)
    path = workdir / "models" / "last.pt"
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickled objects inside
    assert raw["params_hash"] == train_trainer.run_params_hash(tiny_params(**SHORT))
    auto = tiny_params(**{"hardware.precision": "auto"})
    # The hash holds the resolved precision: `auto` on a machine that resolves it differently is another run.
    assert train_trainer.run_params_hash(auto, "fp32") == train_trainer.run_params_hash(tiny_params())
    assert train_trainer.run_params_hash(auto, "bf16") != train_trainer.run_params_hash(auto, "fp32")
    ckpt = load_checkpoint(path, expected_config=tiny_params().model)
    state = ckpt.training_state
    for key in ("optimizer", "scheduler", "scaler", "sampler", "rng", "selection"):
        assert key in state
    assert state["sampler"]["position"] == 4 * 4
    model, _ = load_detector(workdir / "models" / "best.pt", expected_config=tiny_params().model)
    assert model(torch.zeros(1, 19, 1024)).shape == (1, 16)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(workdir, monkeypatch):
    real = train_trainer.masked_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_trainer, "masked_loss", poisoned)
    with pytest.raises(SzflowError, match="at step 3"):
        _run(tiny_params(**{"train.max_steps": 8, "train.checkpoint_every_steps": 2}), workdir)
    ckpt = load_checkpoint(workdir / "models" / "last.pt")
    assert ckpt.step == 2
    assert all(torch.isfinite(v).all() for v in ckpt.state_dict.values() if v.is_floating_point())


def test_grad_accumulation_and_bf16_run(workdir):
    result = _run(tiny_params(**{"hardware.grad_accumulation": 2, "hardware.precision": "bf16",
                                 "train.max_steps": 2, "train.eval_every_steps": 2}), workdir)
    assert result["windows_seen"] == 2 * 4 * 2 and math.isfinite(result["val_auroc"])


# ----------------------------------------------------------------------------- logging
def _wandb_records(run_file: Path) -> list:
    """Records of a W&B offline run file (LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending, records = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block  # block trailer padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        else:  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_wandb_offline_run_records_the_metrics(workdir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(workdir))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    _run(tiny_params(**{"train.max_steps": 4, "train.eval_every_steps": 2, "train.checkpoint_every_steps": 4}),
         workdir)
    run_files = list((workdir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    history: dict[str, list[float]] = {}
    for record in _wandb_records(run_files[0]):
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
    assert len(history["train/loss"]) == 4
    assert len(history["val/auroc"]) == 2 and len(history["val/sensitivity_at_10fa"]) == 2
    curve = _curve(workdir, "train/loss")["loss"].tolist()
    assert history["train/loss"] == pytest.approx(curve)


def test_wandb_online_without_key_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(SzflowError, match="WANDB_API_KEY"):
        resolve_wandb_mode("disabled")
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_wandb_mode("offline") == "offline"


def test_dvclive_curves_resume_without_duplicate_steps(tmp_path):
    curves = tmp_path / "curves"
    logger = RunLogger(curves, wandb_mode="disabled")
    for step in range(1, 6):
        logger.log(step, {"train/loss": float(step)})
    logger.close()
    logger = RunLogger(curves, wandb_mode="disabled", resume_step=3)
    logger.log(4, {"train/loss": 40.0})
    logger.close()
    frame = pd.read_csv(curves / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert frame["step"].tolist() == [1, 2, 3, 4] and frame["loss"].tolist() == [1.0, 2.0, 3.0, 40.0]


def test_dvclive_curves_are_rewritten_from_the_checkpoint_history(tmp_path):
    curves = tmp_path / "curves"
    logger = RunLogger(curves, wandb_mode="disabled")
    for step in range(1, 6):
        logger.log(step, {"train/loss": float(step)})
    history = [list(row) for row in logger.history[:3]]  # what a checkpoint at step 3 carries
    logger.close()
    shutil.rmtree(curves)
    logger = RunLogger(curves, wandb_mode="disabled", resume_step=3, history=history + [[4, {"train/loss": 9.0}]])
    logger.log(4, {"train/loss": 40.0})
    logger.close()
    frame = pd.read_csv(curves / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert frame["step"].tolist() == [1, 2, 3, 4] and frame["loss"].tolist() == [1.0, 2.0, 3.0, 40.0]
    assert logger.history == [[1, {"train/loss": 1.0}], [2, {"train/loss": 2.0}], [3, {"train/loss": 3.0}],
                              [4, {"train/loss": 40.0}]]


# ----------------------------------------------------------------------------- parts
def test_validation_split_is_by_patient_and_deterministic(toy_recordings):
    index = pd.DataFrame(toy_recordings(n_patients=10, recordings_per_patient=3))
    split = split_by_patient(index, val_fraction=0.2, val_seed=0)
    patient_of = dict(zip(index["recording_id"], index["patient"], strict=True))
    train_patients = {patient_of[r] for r in split.train_recordings}
    val_patients = {patient_of[r] for r in split.val_recordings}
    assert not train_patients & val_patients
    assert len(val_patients) == 2 and len(split.val_recordings) == 6
    assert sorted(split.train_recordings + split.val_recordings) == sorted(index["recording_id"])
    # Seizures on both sides (every other toy patient has seizures).
    has_sz = {p for p, v in zip(index["patient"], index["seizure_intervals"], strict=True) if v}
    assert val_patients & has_sz and train_patients & has_sz
    assert split_by_patient(index, 0.2, 0) == split
    assert split_by_patient(index.sample(frac=1.0, random_state=1), 0.2, 0) == split  # row order is irrelevant
    assert split_by_patient(index, 0.2, 1) != split
    with pytest.raises(SzflowError, match="at least 2"):
        split_by_patient(index[index["patient"] == "p000"], 0.2, 0)


def test_masked_loss_ignores_padding_and_weights_positives():
    logits = torch.tensor([[2.0, -1.0, float("nan")]])
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, False]])
    bce = masked_loss(logits, targets, mask, pos_weight=1.0)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :2], targets[:, :2])
    assert torch.allclose(bce, expected)
    heavier = masked_loss(logits, targets, mask, pos_weight=3.0)
    assert heavier > bce
    assert masked_loss(logits[:, :2], targets[:, :2], pos_weight=1.0) == pytest.approx(float(bce))


def test_warmup_cosine_schedule():
    assert warmup_cosine_factor(0, 4, 10) == 0.25 and warmup_cosine_factor(3, 4, 10) == 1.0
    assert warmup_cosine_factor(4, 4, 10) == 1.0 and warmup_cosine_factor(10, 4, 10) == pytest.approx(0.0)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = WarmupCosine(optimizer, warmup_steps=2, max_steps=6)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:3] == [0.5, 1.0, 1.0] and lrs[3] < lrs[2] and lrs[5] < lrs[4]
    restored = WarmupCosine(torch.optim.SGD([param], lr=1.0), warmup_steps=2, max_steps=6)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.get_last_lr() == scheduler.get_last_lr()


def test_rng_state_round_trip():
    seed_everything(3)
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


# ----------------------------------------------------------------------------- distributed
def _ddp_rank(rank: int, world_size: int, params: Params, workdir: str) -> None:
    _run(params, Path(workdir))


def test_two_ranks_match_one_process_with_the_global_batch(tmp_path, monkeypatch, write_toy_store, toy_recordings):
    """torchrun's contract (szflow.train.distributed): N ranks with B/N windows each give the weights of
    one process with B windows (dropout off: each rank would draw its own masks; electrode dropout on:
    it is keyed by the window's number in the run, the same on every rank)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    roots = {}
    for name in ("single", "ddp"):
        roots[name] = tmp_path / name
        write_toy_store(roots[name] / "data" / "cache", "train", toy_recordings(duration_s=20.0, seizure_s=6.0))
    params = tiny_params(**ELECTRODE_DROPOUT,
                         **{"train.max_steps": 3, "train.eval_every_steps": 3, "train.checkpoint_every_steps": 3,
                            "model.dropout": 0.0})
    _run(params, roots["single"])
    spawn(_ddp_rank, world_size=2, args=(params, str(roots["ddp"])), backend="gloo")
    single = load_checkpoint(roots["single"] / "models" / "last.pt")
    ddp = load_checkpoint(roots["ddp"] / "models" / "last.pt")
    assert ddp.step == single.step == 3
    for name, value in single.state_dict.items():
        torch.testing.assert_close(ddp.state_dict[name], value, rtol=1e-4, atol=1e-5)
    summary = json.loads((roots["ddp"] / "metrics" / "train.json").read_text())
    assert summary["world_size"] == 2 and summary["windows_seen"] == 3 * 4


def test_global_batches_give_each_rank_its_slice_of_the_same_draws(tmp_path, write_toy_store, toy_recordings):
    write_toy_store(tmp_path, "train", toy_recordings(duration_s=20.0, seizure_s=6.0))
    store = SplitStore.open(tmp_path, "train")

    def batches(part: slice, n: int = 3) -> list:
        sampler = TrainingWindowSampler(store, window_s=4.0, seed=5, num_windows=12)
        it = iter(GlobalBatches(sampler, 4, part))
        return [next(it) for _ in range(n)]

    whole = batches(slice(None))
    ranks = [batches(rank_slice(4, r, 2)) for r in range(2)]
    assert all(len(b) == 2 for rank in ranks for b in rank)
    assert [a + b for a, b in zip(ranks[0], ranks[1], strict=True)] == whole
    # Past the sampler's epoch the draws continue (a new epoch), never stop the loop.
    assert len(batches(slice(None), n=5)) == 5
