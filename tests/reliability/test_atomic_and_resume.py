"""Killed writers and full disks: no partial output is ever visible, and every stage reruns cleanly.

Real SIGKILLs of real processes (an atomic write, the preprocess stage, training) at random and at
the worst moment (half-way through writing a file), and ENOSPC raised half-way through writing a
checkpoint or an event file. Each time the destination holds the previous content or nothing,
never a partial file, and a rerun completes (training bit-exactly as if never interrupted).
"""

from __future__ import annotations

import contextlib
import errno
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from szflow.config import load_params
from szflow.model import Detector, load_checkpoint, save_checkpoint
from szflow.stages.preprocess import preprocess_corpus
from szflow.synth import generate_corpus

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def run_script(script: str, args: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-c", script, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def temporaries(folder: Path) -> list[Path]:
    """Leftovers of `atomic_path` (hidden `.name.*.tmp` files) anywhere under `folder`."""
    return sorted(p for p in folder.rglob(".*.tmp"))


# ----------------------------------------------------------------------------- atomic write
WRITER = r"""
import json, sys, time
from szflow.io_utils import atomic_path
args = json.loads(sys.argv[1])
with atomic_path(args["dest"]) as tmp, open(tmp, "wb") as handle:
    print("writing", flush=True)
    for i in range(args["chunks"]):
        handle.write(bytes([i % 256]) * 4096)
        handle.flush()
        time.sleep(0.002)
print("done", flush=True)
"""


@pytest.mark.parametrize("old", [b"previous complete content\n", None])
def test_atomic_write_killed_at_random_leaves_old_or_nothing(tmp_path: Path, old: bytes | None) -> None:
    rng = random.Random(0 if old else 1)
    chunks = 200
    complete = b"".join(bytes([i % 256]) * 4096 for i in range(chunks))
    dest = tmp_path / "out.bin"
    kills = 0
    for _ in range(8):
        dest.unlink(missing_ok=True)
        if old is not None:
            dest.write_bytes(old)
        process = run_script(WRITER, {"dest": str(dest), "chunks": chunks})
        assert process.stdout.readline().strip() == "writing"
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += process.returncode == -signal.SIGKILL
        content = dest.read_bytes() if dest.exists() else None
        # Either the writer finished before the kill (complete) or the destination is untouched.
        assert content in (old, complete), (len(content or b""), process.returncode)
    assert kills >= 6  # the kills really happened mid-write
    # A rerun completes; a SIGKILLed writer cannot remove its temporary file (nothing runs after
    # SIGKILL), so hidden `.out.bin.*.tmp` files may remain beside the output: see docs/reliability.md.
    process = run_script(WRITER, {"dest": str(dest), "chunks": chunks})
    assert process.wait(timeout=60) == 0
    assert dest.read_bytes() == complete
    assert all(p.name.startswith(".out.bin.") for p in temporaries(tmp_path))


# ----------------------------------------------------------------------------- disk full
class FullDisk:
    """A file object that accepts `limit` bytes and then fails like a full disk (ENOSPC)."""

    def __init__(self, handle, limit: int):
        self.handle, self.limit, self.written = handle, limit, 0

    def write(self, data) -> int:
        data = bytes(data)
        room = self.limit - self.written
        if len(data) > room:
            self.handle.write(data[:max(room, 0)])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def full_disk_torch_save(monkeypatch, limit_fraction: float = 0.5) -> dict:
    """Make `torch.save` fail with ENOSPC part-way through the file it writes."""
    import io

    real = torch.save
    calls = {"failed": 0}

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real(obj, buffer, *args, **kwargs)
        # save_checkpoint passes an open file; a path works too.
        with contextlib.nullcontext(f) if hasattr(f, "write") else open(f, "wb") as handle:
            calls["failed"] += 1
            FullDisk(handle, int(buffer.tell() * limit_fraction)).write(buffer.getvalue())

    monkeypatch.setattr(torch, "save", save)
    return calls


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    config = load_params(REPO, overrides={"model.encoder_channels": [4, 8], "model.n_layers": 1, "model.d_model": 16,
                                          "model.d_state": 4, "model.chunk_size": 16}).model
    torch.manual_seed(0)
    model = Detector(config, mamba_impl="torch")
    path = tmp_path / "models" / "last.pt"
    save_checkpoint(path, model=model, model_config=config, step=3)
    before = path.read_bytes()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    calls = full_disk_torch_save(monkeypatch)
    with pytest.raises(OSError) as caught:
        save_checkpoint(path, model=model, model_config=config, step=6)
    assert caught.value.errno == errno.ENOSPC and calls["failed"] == 1
    assert path.read_bytes() == before
    assert load_checkpoint(path, expected_config=config).step == 3
    assert temporaries(tmp_path) == []  # atomic_path removed its partial temporary file
    monkeypatch.undo()
    save_checkpoint(path, model=model, model_config=config, step=6)  # space again: the next save works
    assert load_checkpoint(path).step == 6


def test_disk_full_while_writing_events_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    from szflow.detect import write_events

    target = tmp_path / "out" / "rec.csv_bi"
    write_events(target, "rec", [(10.0, 20.0)], 100.0, "csv_bi")
    before = target.read_bytes()
    real = Path.write_text

    def full(self, text, *args, **kwargs):
        with open(self, "wb") as handle:
            FullDisk(handle, len(text) // 2).write(text.encode())

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError):
        write_events(target, "rec", [(30.0, 50.0), (60.0, 70.0)], 100.0, "csv_bi")
    monkeypatch.setattr(Path, "write_text", real)
    assert target.read_bytes() == before
    assert temporaries(tmp_path) == []


# ----------------------------------------------------------------------------- preprocess stage
PREPROCESS = r"""
import json, os, signal, sys
import numpy as np
from szflow.config import load_params
from szflow.layout import PREPROCESS_DIR
from szflow.stages.preprocess import preprocess_corpus
args = json.loads(sys.argv[1])
real = np.lib.format.write_array
calls = {"n": 0}

def dying(handle, array, *a, **k):
    calls["n"] += 1
    if calls["n"] == args["kill_on_write"]:
        # Half an .npy on disk, then the hardest possible death.
        handle.write(b"\x93NUMPY" + bytes(1000))
        handle.flush()
        os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real(handle, array, *a, **k)

np.lib.format.write_array = dying
preprocess_corpus(load_params(args["root"]), PREPROCESS_DIR, progress=False)
"""


def test_preprocess_killed_mid_write_resumes_and_matches_a_clean_run(tmp_path: Path, write_params) -> None:
    root = tmp_path / "proj"
    write_params(root)
    synth = load_params(root, overrides={
        "synth.seed": 2, "synth.patients": {"train": 0, "dev": 0, "eval": 2}, "synth.recordings_per_patient": 2,
        "synth.min_duration_s": 30, "synth.max_duration_s": 60, "synth.broken_files": 0,
        "synth.background_recordings": {"train": 0, "dev": 0, "eval": 0}}).synth
    generate_corpus(root / "corpus", synth, progress=False)
    process = run_script(PREPROCESS, {"root": str(root), "kill_on_write": 3}, cwd=root)
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    out = root / "data" / "preprocess"
    assert not (out / "report.csv").exists()
    metas = sorted((out / "eval").glob("*.json"))
    assert len(metas) == 2  # two recordings finished before the kill
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        array = np.load(meta_path.with_suffix(".npy"))
        assert array.shape == (19, meta["n_samples"]) and array.dtype == np.float16
    # The recording being written has no .npy (only a hidden temporary) and no .json.
    assert len(list((out / "eval").glob("*.npy"))) == 2
    assert len(temporaries(out)) == 1

    params = load_params(root)
    report = preprocess_corpus(params, out, progress=False)
    assert list(report["status"]) == ["ok"] * 4
    assert int(report["resumed"].sum()) == 2
    assert temporaries(out) == []  # the killed writer's leftover is removed by the rerun
    clean = preprocess_corpus(params, tmp_path / "clean", progress=False)
    assert int(clean["resumed"].sum()) == 0
    for npy in sorted((tmp_path / "clean" / "eval").glob("*.npy")):
        assert (out / "eval" / npy.name).read_bytes() == npy.read_bytes(), npy.name


# ----------------------------------------------------------------------------- training
TRAIN_OVERRIDES = {
    "model.n_layers": 1, "model.d_model": 8, "model.d_state": 4, "model.encoder_channels": [4, 8],
    "model.chunk_size": 16,
    "train.max_steps": 6, "train.eval_every_steps": 3, "train.checkpoint_every_steps": 2, "train.warmup_steps": 2,
    "train.lr": 3e-3, "train.val_fraction": 0.34, "train.patience_evals": 10,
    "sampler.window_s": 4.0, "sampler.inference_overlap_s": 1.0,
    "eval.threshold_grid": [0.2, 0.5, 0.8], "eval.smoothing_grid_s": [0.0], "eval.min_duration_grid_s": [0.0],
    "eval.merge_gap_grid_s": [0.0], "eval.hysteresis_low_grid": [None],
    "hardware.train_batch_size": 2, "hardware.inference_batch_size": 8, "hardware.precision": "fp32",
    "hardware.num_workers": 0,
}
# Every training run is its own process (same thread settings for all, so bit-exact comparisons
# hold). `fail_last_save` = [n, how]: the n-th write of last.pt dies half-way, by SIGKILL or ENOSPC.
TRAIN = r"""
import contextlib, errno, io, json, os, signal, sys, time
from pathlib import Path
import torch
from szflow.cache import SplitStore
from szflow.config import load_params
from szflow.stages.train import train_paths
from szflow.train.trainer import Trainer
args = json.loads(sys.argv[1])
params = load_params(args["repo"], hw="local", overrides=args["overrides"])
workdir = Path(args["workdir"])
if args.get("fail_last_save"):
    nth, how = args["fail_last_save"]
    real = torch.save
    saves = {"n": 0}
    def failing_save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("training_state") is not None:  # a last.pt
            saves["n"] += 1
            if saves["n"] == nth:
                buffer = io.BytesIO()
                real(obj, buffer)
                with contextlib.nullcontext(f) if hasattr(f, "write") else open(f, "wb") as handle:
                    handle.write(buffer.getvalue()[: buffer.tell() // 2])
                    handle.flush()
                    os.fsync(handle.fileno())
                    if how == "enospc":
                        raise OSError(errno.ENOSPC, "No space left on device")
                os.kill(os.getpid(), signal.SIGKILL)
        return real(obj, f, *a, **k)
    torch.save = failing_save

def on_step(step, loss):
    print(f"step {step}", flush=True)
    time.sleep(args.get("step_sleep", 0.0))

trainer = Trainer(params, SplitStore.open(workdir / "data" / "cache", "train"), train_paths(workdir),
                  progress=False)
result = trainer.fit(on_step)
print("RESULT " + json.dumps({"steps": result["steps"], "resumed_from_step": result["resumed_from_step"]}),
      flush=True)
"""


def train(workdir: Path, **options) -> subprocess.Popen:
    return run_script(TRAIN, {"workdir": str(workdir), "repo": str(REPO), "overrides": TRAIN_OVERRIDES, **options})


@pytest.fixture(scope="session")
def train_workdir(write_toy_store, toy_recordings):
    def make(path: Path) -> Path:
        write_toy_store(path / "data" / "cache", "train",
                        toy_recordings(n_patients=4, recordings_per_patient=1, duration_s=12.0, seizure_s=4.0))
        return path

    return make


def _result(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, train_workdir) -> Path:
    workdir = train_workdir(tmp_path_factory.mktemp("straight"))
    assert _result(train(workdir)) == {"steps": 6, "resumed_from_step": None}
    return workdir


def test_training_killed_while_writing_last_pt_resumes_bit_exactly(straight_run: Path, tmp_path: Path,
                                                                    train_workdir) -> None:
    workdir = train_workdir(tmp_path)
    # last.pt is written at steps 2, 4, 6: die half-way through writing step 4's.
    process = train(workdir, fail_last_save=[2, "kill"])
    process.wait(timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    last = workdir / "models" / "last.pt"
    assert load_checkpoint(last).step == 2  # the previous checkpoint, whole
    assert len(temporaries(workdir / "models")) == 1  # the half-written one never became last.pt
    assert _result(train(workdir)) == {"steps": 6, "resumed_from_step": 2}
    assert temporaries(workdir / "models") == []  # the rerun removed the half-written one
    assert _same_weights(straight_run / "models" / "last.pt", last)
    assert _same_weights(straight_run / "models" / "best.pt", workdir / "models" / "best.pt")


def test_remove_stale_temporaries_takes_only_what_atomic_path_leaves(tmp_path: Path) -> None:
    from szflow.io_utils import remove_stale_temporaries

    (tmp_path / "sub").mkdir()
    keep = [tmp_path / name for name in ("last.pt", "notes.tmp", ".keep.tmp", ".a.short.tmp", ".a.toolong123.tmp")]
    for path in keep:
        path.write_bytes(b"x")
    # Named as atomic_path names its temporaries (mkstemp's 8 random characters), as a SIGKILL leaves them.
    stale = [tmp_path / ".last.pt.ab_3x9zq.tmp", tmp_path / "sub" / ".x.npy.0a1b2c3d.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == [stale[0]]
    assert stale[1].exists()  # not recursive unless asked
    assert remove_stale_temporaries(tmp_path, recursive=True) == [stale[1]]
    assert all(path.exists() for path in keep)
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_training_killed_at_a_random_moment_resumes_bit_exactly(straight_run: Path, tmp_path: Path,
                                                                 train_workdir) -> None:
    workdir = train_workdir(tmp_path)
    process = train(workdir, step_sleep=0.2)
    for line in process.stdout:
        if line.strip() == "step 3":
            break
    time.sleep(random.Random(7).uniform(0.0, 0.6))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    resumed_from = load_checkpoint(workdir / "models" / "last.pt").step
    assert resumed_from in (2, 4)
    assert _result(train(workdir)) == {"steps": 6, "resumed_from_step": resumed_from}
    assert _same_weights(straight_run / "models" / "last.pt", workdir / "models" / "last.pt")
    assert _same_weights(straight_run / "models" / "best.pt", workdir / "models" / "best.pt")


def test_training_with_a_full_disk_at_a_checkpoint_keeps_the_last_one(straight_run: Path, tmp_path: Path,
                                                                       train_workdir) -> None:
    workdir = train_workdir(tmp_path)
    process = train(workdir, fail_last_save=[2, "enospc"])
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1
    assert "No space left on device" in stderr
    assert load_checkpoint(workdir / "models" / "last.pt").step == 2
    assert temporaries(workdir / "models") == []  # atomic_path removed the partial file
    assert _result(train(workdir)) == {"steps": 6, "resumed_from_step": 2}
    assert _same_weights(straight_run / "models" / "last.pt", workdir / "models" / "last.pt")
