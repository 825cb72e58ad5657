"""DDP mechanism on CPU (gloo): 2 processes with half the global batch each end with the same
weights as 1 process with the whole batch, and the torchrun launcher forms a process group."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.remote.ddp import run_distributed, spawn, torchrun_command
from szflow.train.distributed import local_batch_size, rank_slice

GLOBAL_BATCH = 8
STEPS = 2
REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    # Every rank draws the same global batches (same seed) and keeps its own slice of each.
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(GLOBAL_BATCH, 6, generator=gen), torch.randn(GLOBAL_BATCH, 1, generator=gen))
            for _ in range(STEPS)]


def _train(model: nn.Module, part: slice = slice(None)) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for x, y in _batches():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[part]), y[part])
        loss.backward()
        optimizer.step()


def _ddp_worker(rank: int, world_size: int, out: str) -> None:
    model = DistributedDataParallel(_model())  # averages gradients across ranks (all-reduce)
    _train(model, rank_slice(GLOBAL_BATCH, rank, world_size))
    torch.save(model.module.state_dict(), Path(out) / f"rank{rank}.pt")


def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 shared cores: threads per rank only contend
    spawn(_ddp_worker, world_size=2, args=(str(tmp_path),), backend="gloo")
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)

    single = _model()
    _train(single)
    half = _model()
    _train(half, rank_slice(GLOBAL_BATCH, 0, 2))
    for name, value in single.state_dict().items():
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rank1[name], rank0[name], rtol=0, atol=0)
    # Not trivially true: one rank's half batch alone gives different weights.
    assert any(not torch.allclose(half.state_dict()[k], v, atol=1e-4) for k, v in single.state_dict().items())


def test_rank_slices_partition_the_global_batch():
    parts = [rank_slice(12, r, 3) for r in range(3)]
    assert [list(range(12))[p] for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert local_batch_size(64, 2) == 32
    with pytest.raises(SzflowError, match="multiple of hardware.gpus"):
        local_batch_size(10, 4)


def test_torchrun_command_shape(tmp_path):
    cmd = torchrun_command("szflow.train:run_train_stage", tmp_path / "p.json", tmp_path, 4, python="py")
    assert cmd[:3] == ["py", "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in cmd and "--standalone" in cmd
    assert cmd[cmd.index("-m", 3) + 1] == "szflow.remote.ddp"
    assert cmd[cmd.index("--function") + 1] == "szflow.train:run_train_stage"


def test_torchrun_launcher_runs_the_core_function_on_each_rank(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    params = load_params(REPO, hw="local")
    result = run_distributed("_remote_fixture:ddp_probe", params, tmp_path, nproc=2)
    assert result == {"world_size": 2, "rank": 0, "sum": 3.0, "hw": "local"}
    assert not list(tmp_path.iterdir())  # the launcher's own files are cleaned up
