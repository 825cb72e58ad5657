"""A dummy core stage for the executor tests; imported by pytest and by the loopback container
subprocess (tests/ is put on its PYTHONPATH). Behaviour is steered by environment variables so
the same function can succeed, fail, or be "preempted" once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from szflow.io_utils import atomic_write_json, atomic_write_text


def dummy_stage(params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    calls = os.environ.get("SZFLOW_DUMMY_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as handle:
            handle.write("call\n")
    if os.environ.get("SZFLOW_DUMMY_FAIL"):
        raise RuntimeError("dummy stage failed on purpose")

    last = workdir / "models/last.pt"
    resumed_from = json.loads(last.read_text())["step"] if last.exists() else 0
    marker = os.environ.get("SZFLOW_DUMMY_PREEMPT_MARKER")
    if marker and not Path(marker).exists():
        # First attempt: checkpoint, give the resume sync time to copy it, then die like a
        # preempted container (no cleanup, no exception handling).
        atomic_write_json(last, {"step": 7})
        time.sleep(1.0)
        Path(marker).write_text("preempted")
        os._exit(137)

    inputs = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "data/cache/dummy").rglob("*")
                    if p.is_file())
    total = sum(len((workdir / p).read_bytes()) for p in inputs)
    config = json.loads((workdir / "models/in.json").read_text())
    atomic_write_json(last, {"step": max(resumed_from, 0) + 10})
    preds = workdir / "out/preds"
    preds.mkdir(parents=True, exist_ok=True)
    for name in ("a", "b"):
        atomic_write_text(preds / f"{name}.csv_bi", f"{name},{total},{config['tag']}\n")
    summary = {"inputs": inputs, "bytes": total, "tag": config["tag"], "resumed_from": resumed_from,
               "hw": params.hw, "root_is_workdir": Path(params.root).resolve() == workdir.resolve()}
    atomic_write_json(workdir / "out/result.json", summary)
    return summary


def ddp_probe(params, workdir: Path = Path(".")) -> dict:
    """Run by each torchrun rank: proves the ranks form one process group."""
    import torch
    import torch.distributed as dist

    from szflow.remote.ddp import dist_info

    info = dist_info()
    total = torch.tensor([float(info.rank + 1)])
    dist.all_reduce(total)
    return {"world_size": dist.get_world_size(), "rank": info.rank, "sum": float(total.item()),
            "hw": params.hw}
