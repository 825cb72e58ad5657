"""Remote execution without a token or network: the Modal objects build with the profile's
settings, the plan is right, and the executor contract holds through the loopback setup of
tests/_remote_fixture.py (a local folder as the volume, a subprocess running the real container
code)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import modal
import pytest
from _remote_fixture import CLIENT_ONLY_ENV, LoopbackRunner, LoopbackVolumeStore, loopback_executor
from typer.testing import CliRunner

from szflow.cli import app as cli_app
from szflow.config import load_params
from szflow.errors import ConfigError, SzflowError
from szflow.remote import executor as executor_mod
from szflow.remote import specs
from szflow.remote.credentials import ModalAuthError, modal_token_status
from szflow.remote.executor import LocalExecutor, ModalExecutor, RemoteExecutor, get_executor, run_stage
from szflow.remote.modal_app import (
    IMAGE_PYTHON,
    VOLUME_MOUNT,
    VOLUME_NAME,
    WANDB_SECRET,
    build_app,
    build_retries,
    function_settings,
)
from szflow.remote.plan import build_plan, check_remote
from szflow.remote.specs import GPU_STAGES, StageSpec, get_stage
from szflow.remote.store import blob_path, sha256_file

REPO = Path(__file__).resolve().parents[1]
FAKE_WANDB = "wandb-fake-secret-4f1d9c"
FAKE_MODAL_ID = "ak-fake-id-77aa"
FAKE_MODAL_SECRET = "as-fake-secret-91b2e0"

DUMMY = StageSpec(
    name="dummy",
    function="_remote_fixture:dummy_stage",
    inputs=("data/cache/dummy", "models/in.json"),
    outputs=("out/result.json", "out/preds", "models/last.pt"),
    resume_files=("models/last.pt",),
)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_modal_config(monkeypatch, tmp_path_factory):
    """No token anywhere: neither env nor a ~/.modal.toml on the machine running the tests."""
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.delenv("MODAL_PROFILE", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path_factory.mktemp("modalcfg") / "absent.toml"))


@pytest.fixture
def dummy_stage(monkeypatch):
    """The dummy stage as one more GPU stage, for this test only."""
    monkeypatch.setitem(specs.GPU_STAGES, DUMMY.name, DUMMY)
    return DUMMY


def _project(root: Path) -> Path:
    """A project folder: params, a small 'cache' and one model input."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copytree(REPO / "params", root / "params")
    cache = root / "data/cache/dummy"
    cache.mkdir(parents=True)
    (cache / "x.bin").write_bytes(os.urandom(4096))
    (cache / "sub").mkdir()
    (cache / "sub/y.bin").write_bytes(os.urandom(1000))
    (cache / "copy.bin").write_bytes((cache / "x.bin").read_bytes())  # same content: one blob
    (root / "models").mkdir()
    (root / "models/in.json").write_text(json.dumps({"tag": "v1"}))
    return root


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(root).as_posix(): (sha256_file(p), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _temp_files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def project(tmp_path):
    return _project(tmp_path / "proj")


@pytest.fixture
def loopback(tmp_path, project, dummy_stage, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("SZFLOW_DUMMY_CALLS", str(calls))
    volume = tmp_path / "volume"

    def make(**options) -> RemoteExecutor:
        options.setdefault("work_root", tmp_path / "container")
        return loopback_executor(project, volume, **options)

    make.volume = volume
    make.calls = calls
    return make


def _params(hw: str = "local", root: Path = REPO):
    return load_params(root, hw=hw)


def _run(executor, params):
    inputs = [Path(p) for p in DUMMY.inputs]
    outputs = [Path(p) for p in DUMMY.outputs]
    return executor.run("dummy", inputs, outputs, params)


def _calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# ----------------------------------------------------------------------------- stage specs
def test_stage_specs_list_each_gpu_stage():
    assert set(GPU_STAGES) == {"train", "dev", "eval"}
    assert get_stage("train").function == "szflow.stages.train:run"
    assert get_stage("dev").function == "szflow.stages.dev:run"
    assert get_stage("eval").function == "szflow.stages.eval:run"
    assert get_stage("train").resume_files == ("models/last.pt", "models/best.pt", "metrics/train_curves")
    with pytest.raises(SzflowError, match="unknown remote stage"):
        get_stage("nope")


@pytest.mark.parametrize("name", sorted(GPU_STAGES))
def test_stage_specs_name_a_driver_run_function(name):
    function = GPU_STAGES[name].resolve()
    assert callable(function) and function.__name__ == "run"
    assert function.__module__ == f"szflow.stages.{name}"


# ----------------------------------------------------------------------------- Modal objects
def test_modal_app_builds_with_profile_settings():
    params = _params("a100")
    remote = build_app(params)
    assert isinstance(remote.app, modal.App) and remote.app.name == "szflow"
    assert isinstance(remote.image, modal.Image)
    assert isinstance(remote.volume, modal.Volume) and remote.volume.name == VOLUME_NAME
    assert set(remote.functions) == {"train_stage", "dev_stage", "eval_stage"}
    for name, fn in remote.functions.items():
        spec = fn._spec_  # the settings Modal itself will send
        assert spec.gpus == "A100-80GB"
        assert spec.cpu == 10.0 >= params.hardware.num_workers + 2
        assert spec.memory == 65536
        # Modal keeps its internal (async) objects here: compare by what they name.
        assert {k: repr(v) for k, v in spec.volumes.items()} == {VOLUME_MOUNT: repr(remote.volume)}
        assert repr(remote.volume) == f"modal.Volume.from_name('{VOLUME_NAME}')"
        settings = remote.settings[name]
        assert settings.timeout_s == 86400 and settings.retries == 2
    train_secrets = remote.functions["train_stage"]._spec_.secrets
    assert [repr(s) for s in train_secrets] == [f"modal.Secret.from_name('{WANDB_SECRET}')"]
    assert remote.functions["dev_stage"]._spec_.secrets == []
    retries = build_retries(2)
    assert isinstance(retries, modal.Retries) and retries.max_retries == 2
    assert build_retries(0) is None
    assert build_plan(params, REPO, hash_files=False)["modal"]["image"]["python"] == IMAGE_PYTHON


@pytest.mark.parametrize("wandb_mode", ["disabled", "offline"])
def test_modal_app_variants_multi_gpu_no_wandb(wandb_mode):
    params = load_params(REPO, hw="a100", overrides={"hardware.gpus": 2, "hardware.wandb_mode": wandb_mode})
    hw = params.hardware
    remote = build_app(params)
    train = remote.functions["train_stage"]._spec_
    assert train.gpus == "A100-80GB:2"
    assert train.cpu == 8 * 2 + 2  # data-loader workers per rank, plus the main process and a spare
    assert train.secrets == [] and remote.secrets == {}  # only `online` sends to W&B: no secret required
    assert remote.functions["dev_stage"]._spec_.gpus == "A100-80GB"
    assert set(remote.functions) == {spec.modal_function_name for spec in GPU_STAGES.values()}
    plan = build_plan(params, REPO, hash_files=False)
    assert plan["stages"]["train"]["distributed"] is True and plan["stages"]["train"]["gpu"] == "A100-80GB:2"
    with pytest.raises(ConfigError, match="timeout_s"):
        function_settings(params.model_copy(update={"hardware": hw.model_copy(update={"timeout_s": 90000})}))


# ----------------------------------------------------------------------------- plan / check
@pytest.mark.parametrize("hw", ["a100", "local"])
def test_remote_plan_cli(tmp_path, hw):
    root = _project(tmp_path / "p")
    (root / "data/cache/train").mkdir(parents=True)
    (root / "data/cache/train/signals.f16").write_bytes(b"\0" * 2048)
    result = CliRunner().invoke(cli_app, ["remote", "plan", "--hw", hw, "--params-dir", str(root), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert {"hw", "executor", "stages"} <= set(plan)
    assert set(plan["stages"]) == {"train", "dev", "eval"}
    assert plan["hw"] == hw
    train = plan["stages"]["train"]
    if hw == "a100":
        assert plan["executor"] == "modal" and "modal" in plan
        assert {"gpu", "cpus", "memory_mb", "timeout_s", "retries", "volumes", "upload", "download",
                "modal_function"} <= set(train)
        assert train["gpu"] == "A100-80GB" and train["cpus"] == 10 and train["timeout_s"] == 86400
        uploaded = {f["path"]: f for f in train["upload"]}
        entry = uploaded["data/cache/train/signals.f16"]
        assert entry["size"] == 2048
        assert entry["sha256"] == sha256_file(root / "data/cache/train/signals.f16")
        assert {"path": "models/best.pt", "status": "not built yet"} in plan["stages"]["dev"]["upload"]
        assert train["download"] == list(GPU_STAGES["train"].outputs)
    else:
        assert plan["executor"] == "local" and "modal" not in plan
        assert train["executor"] == "local"
    text = CliRunner().invoke(cli_app, ["remote", "plan", "--hw", hw, "--params-dir", str(root)])
    assert text.exit_code == 0 and "train" in text.output and "eval" in text.output


def test_remote_check_without_token_fails_clearly(tmp_path):
    root = _project(tmp_path / "p")
    result = CliRunner().invoke(cli_app, ["remote", "check", "--hw", "a100", "--params-dir", str(root)])
    assert result.exit_code == 1
    assert "modal token new" in result.output and "MODAL_TOKEN_ID" in result.output
    assert "[ok] app builds" in result.output


def test_token_detection_env_and_config_file(monkeypatch, tmp_path):
    assert not modal_token_status().present
    cfg = tmp_path / "modal.toml"
    cfg.write_text('[other]\ntoken_id = "x"\n\n[work]\ntoken_id = "ak-1"\ntoken_secret = "as-2"\nactive = true\n')
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(cfg))
    status = modal_token_status()
    assert status.present and "[work]" in status.source
    monkeypatch.setenv("MODAL_PROFILE", "other")  # a profile without a secret
    assert not modal_token_status().present
    monkeypatch.setenv("MODAL_TOKEN_SECRET", FAKE_MODAL_SECRET)
    assert modal_token_status().present
    assert FAKE_MODAL_SECRET not in modal_token_status().describe()


# ----------------------------------------------------------------------------- executors
def test_get_executor_follows_profile():
    assert isinstance(get_executor(_params("local")), LocalExecutor)
    assert isinstance(get_executor(_params("a100")), ModalExecutor)


def test_local_executor_runs_core_in_process(project, dummy_stage):
    result = _run(LocalExecutor(project), _params("local", project))
    assert result["tag"] == "v1" and result["resumed_from"] == 0
    assert (project / "out/preds/a.csv_bi").exists()


def test_missing_input_is_reported_before_any_work(project, dummy_stage, loopback):
    (project / "models/in.json").unlink()
    before = _snapshot(project)
    with pytest.raises(SzflowError, match="not built yet: models/in.json"):
        _run(loopback(), _params("a100", project))
    assert _snapshot(project) == before
    assert not any(loopback.volume.rglob("*"))


def test_loopback_uploads_by_hash_and_downloads_outputs(project, loopback):
    params = _params("a100", project)
    local = _run(LocalExecutor(project), params)
    for out in DUMMY.outputs:
        target = project / out
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    calls_local = _calls(loopback.calls)
    (project / ".dvc").mkdir()  # a DVC project: hashes are remembered in .dvc/tmp

    executor = loopback()
    result = _run(executor, params)
    # Same summary as the in-process run, computed in a separate workdir built from the volume.
    assert {k: v for k, v in result.items()} == {**local, "root_is_workdir": True}
    assert _calls(loopback.calls) == calls_local + 1
    stats = executor.last
    # 3 cache files but 2 distinct contents, models/in.json, params.yaml, 2 profiles.
    assert stats.uploaded == 6 and stats.skipped == 1
    for out in ("out/result.json", "out/preds/a.csv_bi", "out/preds/b.csv_bi", "models/last.pt"):
        assert (project / out).is_file(), out
    assert json.loads((project / "out/result.json").read_text())["tag"] == "v1"
    blob = loopback.volume / blob_path(sha256_file(project / "data/cache/dummy/x.bin"))
    assert blob.is_file()
    assert _temp_files(project) == []
    remembered = json.loads((project / ".dvc/tmp/szflow-sha256.json").read_text())
    assert remembered["data/cache/dummy/x.bin"][2] == sha256_file(project / "data/cache/dummy/x.bin")

    # Second run, nothing changed: nothing uploaded, and the finished run on the volume is reused
    # (the core function is not called again: no GPU time spent twice).
    again = loopback()
    assert _run(again, params) == result
    assert again.last.uploaded == 0 and again.last.skipped == 7
    assert again.store.uploads == []
    assert _calls(loopback.calls) == calls_local + 1

    # Changed code (same inputs and params): the stage runs again, nothing is uploaded.
    real = executor_mod.code_fingerprint
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(executor_mod, "code_fingerprint", lambda fn: "edited-" + real(fn))
        edited = loopback()
        _run(edited, params)
        assert edited.last.uploaded == 0
    assert _calls(loopback.calls) == calls_local + 2

    # One changed input: only it is uploaded, and the stage runs again.
    (project / "models/in.json").write_text(json.dumps({"tag": "v2"}))
    third = loopback()
    assert _run(third, params)["tag"] == "v2"
    assert third.last.uploaded == 1
    assert _calls(loopback.calls) == calls_local + 3
    assert "v2" in (project / "out/preds/a.csv_bi").read_text()


def test_failing_container_leaves_previous_outputs(project, loopback, monkeypatch):
    params = _params("a100", project)
    _run(loopback(), params)
    (project / "models/in.json").write_text(json.dumps({"tag": "v2"}))  # a new run is needed
    before = {k: v for k, v in _snapshot(project).items() if k.startswith(("out/", "models/last"))}
    monkeypatch.setenv("SZFLOW_DUMMY_FAIL", "1")
    with pytest.raises(SzflowError, match="failed on purpose"):
        _run(loopback(), params)
    after = {k: v for k, v in _snapshot(project).items() if k.startswith(("out/", "models/last"))}
    assert after == before
    assert _temp_files(project) == []


class _FlakyStore(LoopbackVolumeStore):
    """Fails on the n-th download, after earlier files were fetched."""

    def __init__(self, root, fail_at: int):
        super().__init__(root)
        self.fail_at = fail_at
        self.gets = 0

    def get(self, remote_path, local_path):
        self.gets += 1
        if self.gets == self.fail_at:
            Path(local_path).write_bytes(b"partial")  # a half-written file that must not survive
            raise OSError("connection reset during download")
        super().get(remote_path, local_path)


@pytest.mark.parametrize("fail_at", [1, 3, 4])
def test_failed_download_is_all_or_nothing(project, loopback, fail_at):
    params = _params("a100", project)
    _run(loopback(), params)
    (project / "models/in.json").write_text(json.dumps({"tag": "v2"}))
    before = {k: v for k, v in _snapshot(project).items() if k.startswith(("out/", "models/last"))}
    runner = LoopbackRunner(loopback.volume)
    executor = RemoteExecutor(project, _FlakyStore(loopback.volume, fail_at), runner)
    with pytest.raises(OSError, match="connection reset"):
        _run(executor, params)
    after = {k: v for k, v in _snapshot(project).items() if k.startswith(("out/", "models/last"))}
    assert after == before
    assert _temp_files(project) == []
    # The finished run stays on the volume: a retry only downloads.
    retry = loopback()
    assert _run(retry, params)["tag"] == "v2"
    assert "v2" in (project / "out/preds/b.csv_bi").read_text()


def test_corrupt_download_is_rejected(project, loopback):
    params = _params("a100", project)
    result = _run(loopback(), params)
    assert result["tag"] == "v1"
    before = _snapshot(project)
    # Tamper with a finished output on the volume: the sha256 check must refuse it.
    run = next((loopback.volume / "runs/dummy").iterdir())
    target = run / "out/out/preds/a.csv_bi"
    target.write_text("tampered\n")
    with pytest.raises(SzflowError, match="sha256"):
        _run(loopback(), params)
    assert _snapshot(project) == before
    assert _temp_files(project) == []


def test_preempted_container_resumes_from_volume_checkpoint(project, loopback, monkeypatch, tmp_path):
    monkeypatch.setenv("SZFLOW_DUMMY_PREEMPT_MARKER", str(tmp_path / "preempted"))
    executor = loopback(retries=1, sync_interval_s=0.1)
    result = _run(executor, _params("a100", project))
    assert executor.runner.attempts == 2
    assert result["resumed_from"] == 7  # the second container found last.pt on the volume
    assert json.loads((project / "models/last.pt").read_text()) == {"step": 17}


def test_modal_executor_without_token_fails_fast_and_touches_nothing(project, dummy_stage):
    before = _snapshot(project)
    start = time.monotonic()
    with pytest.raises(ModalAuthError, match="modal token new"):
        _run(ModalExecutor(project, _params("a100", project)), _params("a100", project))
    assert time.monotonic() - start < 5
    assert _snapshot(project) == before
    assert not (project / ".dvc").exists()


def test_run_stage_with_modal_profile_and_no_token(project, monkeypatch):
    monkeypatch.chdir(project)
    start = time.monotonic()
    with pytest.raises(ModalAuthError, match="MODAL_TOKEN_SECRET"):
        run_stage("train", _params("a100", project), project)
    assert time.monotonic() - start < 5


def test_no_secret_is_written_or_logged(project, loopback, monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_WANDB)
    monkeypatch.setenv("MODAL_TOKEN_ID", FAKE_MODAL_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", FAKE_MODAL_SECRET)
    caplog.set_level("DEBUG")
    params = _params("a100", project)
    texts = [params.model_dump_json()]
    executor = loopback()
    _run(executor, params)
    texts.extend(executor.runner.logs)
    cli = CliRunner()
    for args in (["remote", "plan", "--hw", "a100", "--params-dir", str(project), "--json"],
                 ["remote", "plan", "--hw", "a100", "--params-dir", str(project)]):
        result = cli.invoke(cli_app, args)
        assert result.exit_code == 0
        texts.append(result.output)
    texts.append(repr(check_remote(params, reach_volume=False)))
    texts.append(caplog.text)
    for folder in (project, loopback.volume, tmp_path / "container"):
        for path in folder.rglob("*"):
            if path.is_file():
                texts.append(path.read_bytes().decode("utf-8", "replace"))
    blob = "\n".join(texts)
    for secret in (FAKE_WANDB, FAKE_MODAL_ID, FAKE_MODAL_SECRET):
        assert secret not in blob
    assert "Modal token found (environment)" in blob


def test_loopback_container_env_has_no_modal_token(monkeypatch, tmp_path):
    monkeypatch.setenv("MODAL_TOKEN_SECRET", FAKE_MODAL_SECRET)
    env = LoopbackRunner(tmp_path).env()
    assert "MODAL_TOKEN_SECRET" not in env and "MODAL_TOKEN_ID" not in env
    assert CLIENT_ONLY_ENV == ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
