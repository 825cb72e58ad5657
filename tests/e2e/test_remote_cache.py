"""Round trip through a DVC remote: `dvc push --run-cache` from one clone, `dvc pull --run-cache` in a
second, and `dvc repro` in the second reruns nothing. Once with a local folder remote, once with S3
served by moto on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import dvc_s3  # noqa: F401  (DVC's S3 remote, from the dev extra: without it the S3 test fails, not skips)
import moto.server  # noqa: F401  (served in a subprocess below)
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dvc(run):
    """`dvc(args, cwd, extra_env, check=True)`: one DVC command with extra environment variables."""

    def call(args: list[str], cwd: Path, extra_env: dict, check: bool = True) -> subprocess.CompletedProcess:
        return run(["dvc", *args], cwd, timeout=600, check=check, extra_env=extra_env)

    return call


@pytest.fixture(scope="session")
def clone_and_restore(run, dvc):
    """The colleague's clone gets the committed dvc.lock; `dvc pull --run-cache` brings the outs and
    the run history, after which `dvc repro` must find every stage up to date (its output is returned)."""

    def call(source: Path, dest: Path, remote_args: list[list[str]], extra_env: dict) -> str:
        run(["git", "add", "dvc.lock"], source)
        run(["git", "commit", "-qm", "dvc.lock after repro"], source, check=False)
        run(["git", "clone", "-q", str(source), str(dest)], source.parent)
        for args in remote_args:
            dvc(args, dest, extra_env)
        dvc(["pull", "--run-cache", "-r", "shared"], dest, extra_env)
        return dvc(["repro"], dest, extra_env).stdout

    return call


def _assert_nothing_ran(output: str) -> None:
    assert "Running stage" not in output, output
    assert "skipping run" in output or "up to date" in output, output


def test_local_folder_remote_round_trip(tiny_project: Path, tmp_path: Path, dvc, clone_and_restore):
    storage = tmp_path / "storage"
    remote = [["remote", "add", "-f", "shared", str(storage)]]
    for args in remote:
        dvc(args, tiny_project, {})
    dvc(["push", "--run-cache", "-r", "shared"], tiny_project, {})
    output = clone_and_restore(tiny_project, tmp_path / "clone", remote, {})
    _assert_nothing_ran(output)
    assert (tmp_path / "clone" / "metrics" / "eval.json").read_bytes() == \
        (tiny_project / "metrics" / "eval.json").read_bytes()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto_s3():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("moto S3 server did not start")
        credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket="szflow")
        yield f"http://127.0.0.1:{port}", credentials
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_s3_remote_round_trip(tiny_project: Path, tmp_path: Path, moto_s3, dvc, clone_and_restore):
    endpoint, credentials = moto_s3
    remote = [["remote", "add", "-f", "shared", "s3://szflow/cache"],
              ["remote", "modify", "shared", "endpointurl", endpoint]]
    for args in remote:
        dvc(args, tiny_project, credentials)
    dvc(["push", "--run-cache", "-r", "shared"], tiny_project, credentials)
    output = clone_and_restore(tiny_project, tmp_path / "clone_s3", remote, credentials)
    _assert_nothing_ran(output)
    assert os.path.exists(tmp_path / "clone_s3" / "models" / "best.pt")


def test_run_cache_without_dvc_lock_reruns_only_train(tiny_project: Path, tmp_path: Path, dvc, run):
    """A clone without dvc.lock: `dvc repro --pull` restores every stage from the run-cache except
    train, which DVC never restores from it (a stage with `persist` outputs, here last.pt for
    resuming); train reruns deterministically, so dev, eval and plots are hits again."""
    storage = tmp_path / "storage"
    dvc(["remote", "add", "-f", "shared", str(storage)], tiny_project, {})
    dvc(["push", "--run-cache", "-r", "shared"], tiny_project, {})
    clone = tmp_path / "no_lock"
    run(["git", "clone", "-q", str(tiny_project), str(clone)], tmp_path)
    (clone / "dvc.lock").unlink(missing_ok=True)
    # The default remote: `dvc repro --pull` fetches the outputs of run-cache hits from it.
    dvc(["remote", "add", "-d", "-f", "shared", str(storage)], clone, {})
    # Downloads the run records and the outputs they point to; without dvc.lock it cannot check
    # anything out yet and exits non-zero ("Checkout failed"), which is expected here.
    dvc(["pull", "--run-cache", "-r", "shared"], clone, {}, check=False)
    output = dvc(["repro", "--pull"], clone, {}).stdout
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}
    assert ran == {"train"}, output
    for name in ("metrics/eval.json", "metrics/dev.json", "models/best.pt"):
        assert (clone / name).read_bytes() == (tiny_project / name).read_bytes(), name
