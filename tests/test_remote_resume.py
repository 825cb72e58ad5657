"""A preempted remote training run finishes with the outputs of an uninterrupted one.

The real train stage (tiny model, toy cache) runs through the loopback executor of
tests/_remote_fixture.py: a local folder as the volume, a subprocess running the real container
code, and retries like `modal.Retries`. The container is killed (exit 137, no cleanup) right after
the checkpoint of its best validation reached the volume, and again half-way through writing its
final checkpoint; the retries must finish with best.pt and the training curves byte for byte those
of an uninterrupted run. Below them, the sync's ordering (the checkpoint is put in place last), the
restore, and curves copied in the middle of a write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _remote_fixture import loopback_executor

from szflow import layout
from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.model.checkpoint import load_checkpoint
from szflow.remote import container
from szflow.remote.container import ResumeSync
from szflow.remote.specs import get_stage
from szflow.remote.store import iter_files, run_dir, sha256_file
from szflow.train.logging import RunLogger

REPO = Path(__file__).resolve().parents[1]
# Validations every 2 steps; on the toy cache the best is step 2 and no later one beats it,
# so a run resumed after step 2 never writes best.pt again (checked below, not assumed).
TINY_RUN = {
    "model.n_layers": 1, "model.d_model": 16, "model.d_state": 4, "model.encoder_channels": [8, 16],
    "model.chunk_size": 16, "model.dropout": 0.1,
    "train.max_steps": 12, "train.eval_every_steps": 2, "train.checkpoint_every_steps": 2, "train.warmup_steps": 2,
    "train.lr": 3e-3, "train.val_fraction": 0.34, "train.patience_evals": 10,
    "sampler.window_s": 4.0, "sampler.inference_overlap_s": 1.0,
    "hardware.train_batch_size": 4, "hardware.inference_batch_size": 8, "hardware.precision": "fp32",
    "hardware.num_workers": 0, "hardware.device": "cpu", "hardware.wandb_mode": "disabled",
    # Off, as in tests/test_train.py: the toy seizure is common to every channel, and the
    # re-referencing after a dropout removes it (test_train covers resume with dropout on).
    "train.electrode_dropout_probability": 0.0,
}
BEST_STEP = 2


def _train_project(root: Path, write_toy_store, toy_recordings) -> Path:
    write_toy_store(root / layout.CACHE_DIR, "train", toy_recordings(duration_s=20.0, seizure_s=6.0))
    return root


def _run_train(root: Path, volume: Path, **runner_options):
    spec = get_stage("train")
    inputs, outputs = spec.paths()
    executor = loopback_executor(root, volume, work_root=root.parent / f"{root.name}-container", **runner_options)
    params = load_params(REPO, hw="local", overrides=TINY_RUN)
    result = executor.run("train", inputs, outputs, params)
    return executor, result


def _curve_files(root: Path) -> dict[str, str]:
    curves = root / layout.TRAIN_CURVES_DIR
    return {f.relative_to(curves).as_posix(): sha256_file(f) for f in iter_files(curves)}


def _arm_preemptions(monkeypatch, tmp_path: Path, *events: str) -> Path:
    """Preempt the loopback containers at `events` (tests/_remote_fixture.py: arm_preemption), each
    once; returns the folder where each fired event leaves its marker."""
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("SZFLOW_PREEMPT", ",".join(events))
    monkeypatch.setenv("SZFLOW_PREEMPT_DIR", str(markers))
    return markers


def test_preempted_train_finishes_with_the_outputs_of_an_uninterrupted_run(
        tmp_path, monkeypatch, write_toy_store, toy_recordings):
    straight = _train_project(tmp_path / "straight", write_toy_store, toy_recordings)
    _, straight_result = _run_train(straight, tmp_path / "volume-straight")
    # The scenario this test is about: the best validation is not the last one.
    assert straight_result["best_step"] == BEST_STEP and straight_result["steps"] == 12
    assert load_checkpoint(straight / layout.BEST_CHECKPOINT).step == BEST_STEP

    preempted = _train_project(tmp_path / "preempted", write_toy_store, toy_recordings)
    markers = _arm_preemptions(monkeypatch, tmp_path, f"after-step:{BEST_STEP}", "final-write")
    volume = tmp_path / "volume"
    executor, result = _run_train(preempted, volume, retries=2, sync_interval_s=0.05)

    # Three containers: killed after step 10's checkpoint reached the volume, killed while writing
    # the checkpoint of step 12, then the one that finished (resumed from step 10 again).
    assert executor.runner.attempts == 3
    assert sorted(p.name for p in markers.iterdir()) == [f"after-step-{BEST_STEP}", "final-write"]
    assert "resuming from" in executor.runner.logs[1] and f"at step {BEST_STEP}" in executor.runner.logs[1]
    assert "at step 10" in executor.runner.logs[2]
    assert result["resumed_from_step"] == 10 and result["steps"] == 12 and result["best_step"] == BEST_STEP

    # The outputs are those of the uninterrupted run, byte for byte.
    for rel in (layout.BEST_CHECKPOINT, layout.BASELINE_MODEL):
        assert sha256_file(preempted / rel) == sha256_file(straight / rel), rel
    assert _curve_files(preempted) == _curve_files(straight)
    summary = json.loads((preempted / layout.TRAIN_METRICS).read_text())
    assert summary["best_step"] == BEST_STEP and summary["val_auroc"] == straight_result["val_auroc"]

    # The volume kept the resume state of the run, and no half-written file among it.
    state = volume / run_dir("train", executor.last.run_key) / "state"
    assert sha256_file(state / layout.BEST_CHECKPOINT) == sha256_file(straight / layout.BEST_CHECKPOINT)
    assert not [p for p in state.rglob("*") if p.name.endswith(".tmp")]


def test_resume_without_its_best_checkpoint_starts_afresh_and_finishes(
        tmp_path, monkeypatch, write_toy_store, toy_recordings):
    """A volume state whose best.pt is gone (deleted by hand, or a sync that never happened) is not
    resumed into a run that could never write best.pt again: the retry starts afresh and finishes."""
    root = _train_project(tmp_path / "p", write_toy_store, toy_recordings)
    _arm_preemptions(monkeypatch, tmp_path, f"after-step:{BEST_STEP}")
    volume = tmp_path / "volume"
    with pytest.raises(SzflowError, match="failed after 1 attempt"):
        _run_train(root, volume, retries=0, sync_interval_s=0.05)
    state = next((volume / "runs/train").iterdir()) / "state"
    (state / layout.BEST_CHECKPOINT).unlink()
    executor, result = _run_train(root, volume, retries=0, sync_interval_s=0.05)
    assert "its best checkpoint is not there" in executor.runner.logs[0]
    assert result["resumed_from_step"] is None and result["steps"] == 12 and result["best_step"] == BEST_STEP
    assert load_checkpoint(root / layout.BEST_CHECKPOINT).step == BEST_STEP


# ----------------------------------------------------------------------------- the sync itself
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.abcdefgh.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # as the trainer writes: atomically


def test_sync_puts_the_checkpoint_in_place_after_the_files_that_go_with_it(tmp_path, monkeypatch):
    """Modal may commit the volume at any moment, so at no moment may the volume hold a last.pt
    newer than its best.pt and curves: the checkpoint is read first and renamed into place last."""
    work, state = tmp_path / "work", tmp_path / "vol/state"
    paths = [layout.LAST_CHECKPOINT.as_posix(), layout.BEST_CHECKPOINT.as_posix(), layout.TRAIN_CURVES_DIR.as_posix()]
    commits: list[dict[str, str]] = []

    def commit() -> None:
        commits.append({p.relative_to(state).as_posix(): p.read_text() for p in state.rglob("*") if p.is_file()})

    sync = ResumeSync(work, state, paths, commit, interval_s=3600)
    sync.start()
    renames: list[str] = []
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).is_relative_to(state):
            renames.append(Path(dst).relative_to(state).as_posix())
        real_replace(src, dst)

    monkeypatch.setattr(container.os, "replace", replace)
    for step in (2, 4):
        _write(work / layout.BEST_CHECKPOINT, f"best {step}")
        _write(work / layout.TRAIN_CURVE_TABLES_DIR / "train/loss.tsv", f"step\tloss\n{step}\t0.5\n")
        _write(work / layout.LAST_CHECKPOINT, f"last {step}")
        assert sync.sync_once()
        assert renames[-1] == layout.LAST_CHECKPOINT.as_posix()
        assert set(renames) == {layout.LAST_CHECKPOINT.as_posix(), layout.BEST_CHECKPOINT.as_posix(),
                                (layout.TRAIN_CURVE_TABLES_DIR / "train/loss.tsv").as_posix()}
        renames.clear()
    assert not sync.sync_once()  # nothing changed: no copy, no commit
    # Only the curves changed: the checkpoint is not copied again.
    _write(work / layout.TRAIN_CURVE_TABLES_DIR / "train/loss.tsv", "step\tloss\n4\t0.5\n5\t0.4\n")
    assert sync.sync_once() and renames == [(layout.TRAIN_CURVE_TABLES_DIR / "train/loss.tsv").as_posix()]
    sync.stop()
    assert [c[layout.LAST_CHECKPOINT.as_posix()] for c in commits] == ["last 2", "last 4", "last 4"]
    assert commits[-1][layout.BEST_CHECKPOINT.as_posix()] == "best 4"
    assert not [p for p in state.rglob("*.tmp")]


def test_restore_needs_the_checkpoint(tmp_path):
    """Companions of a checkpoint are restored only with it (without last.pt a run starts afresh,
    and a stray best.pt would be another run's)."""
    volume, work = tmp_path / "vol", tmp_path / "work"
    job = {"stage": "train", "run_key": "k", "inputs": [],
           "resume_files": [layout.LAST_CHECKPOINT.as_posix(), layout.BEST_CHECKPOINT.as_posix(),
                            layout.TRAIN_CURVES_DIR.as_posix()]}
    state = volume / run_dir("train", "k") / "state"
    _write(state / layout.BEST_CHECKPOINT, "best")
    _write(state / layout.TRAIN_CURVE_TABLES_DIR / "train/loss.tsv", "step\tloss\n1\t0.5\n")
    container.build_workdir(job, volume, work)
    assert not any(work.rglob("*"))
    _write(state / layout.LAST_CHECKPOINT, "last")
    container.build_workdir(job, volume, work)
    assert (work / layout.BEST_CHECKPOINT).read_text() == "best"
    assert (work / layout.TRAIN_CURVE_TABLES_DIR / "train/loss.tsv").read_text() == "step\tloss\n1\t0.5\n"
    assert (work / layout.LAST_CHECKPOINT).read_text() == "last"


def test_curves_copied_mid_write_resume_cleanly(tmp_path):
    """A resume copy taken while DVCLive appended a row (half a row at the end) or rewrote its
    summary (an empty metrics.json): the resumed logger drops the half row and the unreadable
    summary instead of failing or keeping a wrong row."""
    curves = tmp_path / "curves"
    tsv = curves / "plots" / "metrics" / "train" / "loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tloss\n1\t0.9\n2\t0.8\n3\t0.7\n1", encoding="utf-8")  # "1" of a row "13\t0.2"
    (curves / "metrics.json").write_text("")
    logger = RunLogger(curves, wandb_mode="disabled", resume_step=2)
    logger.log(3, {"train/loss": 0.6})
    logger.close()
    assert tsv.read_text().splitlines() == ["step\tloss", "1\t0.9", "2\t0.8", "3\t0.6"]
    assert json.loads((curves / "metrics.json").read_text())["train"]["loss"] == 0.6
