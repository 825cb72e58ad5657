"""Multi-GPU training in one container: torchrun launches one process per GPU, each calls the same
core stage function; DistributedDataParallel all-reduces (averages) the gradients.

The contract with the train loop (see docs/modal.md): every rank draws the same global sequence of
batches (same sampler seed) and keeps its `rank_slice` of each global batch, so N ranks with a
local batch of B/N reproduce the 1-process run with batch B; only rank 0 writes files.

Entry points:
  - `torchrun_command(...)`: the command line the container runs.
  - `python -m szflow.remote.ddp --function M:F --params P.json --workdir W`: one rank (torchrun
    starts N of these); rank 0 writes the core function's result to W/.szflow-ddp-result.json.
  - `run_distributed(...)`: build the command, run it, return rank 0's result.
  - `spawn(fn, world_size)`: run `fn(rank, world_size, *args)` in N local processes with a
    process group (gloo on CPU) -- used by tests to show the mechanism without torchrun.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from szflow.config import Params
from szflow.errors import SzflowError
from szflow.io_utils import atomic_write_json, jsonable
from szflow.remote.specs import resolve_function
from szflow.train.distributed import init_distributed, shutdown_distributed

RESULT_FILE = ".szflow-ddp-result.json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(function: str, params_file: Path, workdir: Path, nproc: int,
                     python: str = sys.executable) -> list[str]:
    """`python -m torch.distributed.run` (torchrun) with one process per GPU on this node."""
    return [
        python, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc-per-node={nproc}",
        "-m", "szflow.remote.ddp", "--function", function, "--params", str(params_file),
        "--workdir", str(workdir),
    ]


def run_distributed(function: str, params: Params, workdir: Path, nproc: int) -> dict:
    """Run the core function on `nproc` ranks; return rank 0's result."""
    workdir = Path(workdir)
    params_file = workdir / ".szflow-ddp-params.json"
    params_file.write_text(params.model_dump_json(), encoding="utf-8")
    result_file = workdir / RESULT_FILE
    result_file.unlink(missing_ok=True)
    proc = subprocess.run(torchrun_command(function, params_file, workdir, nproc), cwd=workdir, check=False)
    if proc.returncode != 0:
        raise SzflowError(f"distributed run of {function} on {nproc} processes failed (exit {proc.returncode})")
    try:
        result = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SzflowError(f"distributed run of {function}: rank 0 wrote no result ({exc})") from exc
    params_file.unlink(missing_ok=True)
    result_file.unlink(missing_ok=True)
    return result


def _worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m szflow.remote.ddp", description="One DDP rank of a stage.")
    parser.add_argument("--function", required=True)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--workdir", required=True, type=Path)
    args = parser.parse_args(argv)
    params = Params.model_validate_json(args.params.read_text(encoding="utf-8"))
    info = init_distributed()
    try:
        result = resolve_function(args.function)(params, args.workdir)
        if info.is_main:
            atomic_write_json(args.workdir / RESULT_FILE, jsonable(result))
    finally:
        shutdown_distributed()
    return 0


def _spawn_target(local_rank: int, fn: Callable[..., Any], world_size: int, port: int, backend: str,
                  args: tuple) -> None:
    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(local_rank),
                       "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size)})
    dist.init_process_group(backend=backend, rank=local_rank, world_size=world_size)
    try:
        fn(local_rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., Any], world_size: int, args: tuple = (), backend: str = "gloo") -> None:
    """Run `fn(rank, world_size, *args)` in `world_size` fresh processes joined in a process group.

    `fn` must be importable by the children (a module-level function).
    """
    import torch.multiprocessing as mp

    mp.spawn(_spawn_target, args=(fn, world_size, free_port(), backend, args), nprocs=world_size, join=True)


if __name__ == "__main__":  # pragma: no cover - torchrun entry
    sys.exit(_worker_main())
