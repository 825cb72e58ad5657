"""`szflow remote check` and the Modal executor's preflight: token, client Python, image lock and
the Modal Secrets the profile needs, each failure named with the command that fixes it. The only
network call (the secret lookup) is stubbed at modal's `Secret.from_name(...).hydrate()`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import modal
import pytest
from modal.exception import NotFoundError
from typer.testing import CliRunner

from szflow.cli import app as cli_app
from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.remote import plan as plan_mod
from szflow.remote.executor import ModalExecutor
from szflow.remote.modal_app import WANDB_KEYS, WANDB_SECRET
from szflow.remote.plan import check_remote, needed_secrets, preflight, require_ready

REPO = Path(__file__).resolve().parents[1]
FAKE_ID, FAKE_SECRET = "ak-check-fake-1", "as-check-fake-2"


def _project(root: Path, wandb_mode: str = "online") -> Path:
    root.mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copytree(REPO / "params", root / "params")
    a100 = root / "params/a100.yaml"
    a100.write_text(a100.read_text().replace("wandb_mode: online", f"wandb_mode: {wandb_mode}"))
    return root


class _SecretStub:
    """modal.Secret.from_name without the network: `existing` names exist, others are NotFound."""

    def __init__(self, existing: set[str]):
        self.existing = existing
        self.lookups: list[tuple[str, tuple]] = []

    def __call__(self, name, required_keys=()):
        stub = self

        class _Secret:
            def hydrate(self):
                stub.lookups.append((name, tuple(required_keys)))
                if name not in stub.existing:
                    raise NotFoundError(f"Secret '{name}' not found in environment 'main'")
                return self

        return _Secret()


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("MODAL_TOKEN_ID", FAKE_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", FAKE_SECRET)


def test_check_json_without_token_names_token_and_wandb_secret_with_fixes(tmp_path):
    root = _project(tmp_path / "p")
    result = CliRunner().invoke(cli_app, ["remote", "check", "--hw", "a100", "--params-dir", str(root), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    missing = {m["check"]: m for m in report["missing"]}
    assert missing["token"]["fix"] == "modal token new"
    assert "cannot check secrets without a token" in missing["secret wandb"]["message"]
    assert "wandb_mode: online" in missing["secret wandb"]["message"]
    assert missing["secret wandb"]["fix"].startswith("modal secret create wandb WANDB_API_KEY=")
    assert "hardware.wandb_mode: offline or disabled in params/a100.yaml" in missing["secret wandb"]["fix"]
    passed = {c["name"] for c in report["checks"] if c["ok"]}
    assert {"client python", "image lock", "app builds"} <= passed


def test_check_of_a_local_profile_names_the_modal_profiles(tmp_path):
    root = _project(tmp_path / "p")
    result = CliRunner().invoke(cli_app, ["remote", "check", "--hw", "local", "--params-dir", str(root)])
    assert result.exit_code == 2
    assert "profile 'local' runs on this machine" in result.stderr
    assert "szflow remote check --hw a100" in result.stderr


def test_check_text_prints_each_fix(tmp_path):
    root = _project(tmp_path / "p")
    result = CliRunner().invoke(cli_app, ["remote", "check", "--hw", "a100", "--params-dir", str(root)])
    assert result.exit_code == 1
    assert "[FAIL] token" in result.output and "fix: modal token new" in result.output
    assert "[FAIL] secret wandb" in result.output and "fix: modal secret create wandb" in result.output
    assert "[ok] image lock" in result.output


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_no_secret_needed_unless_wandb_online(tmp_path, mode):
    params = load_params(_project(tmp_path / "p", mode), hw="a100")
    assert needed_secrets(params) == []
    assert not any(c.name.startswith("secret") for c in preflight(params, lookup=None))


def test_with_token_a_missing_secret_is_looked_up_and_named(tmp_path, token, monkeypatch):
    stub = _SecretStub(existing=set())
    monkeypatch.setattr(modal.Secret, "from_name", stub)
    params = load_params(_project(tmp_path / "p"), hw="a100")
    checks = {c.name: c for c in preflight(params)}
    assert checks["token"].ok
    assert not checks["secret wandb"].ok and "does not exist" in checks["secret wandb"].message
    assert stub.lookups == [(WANDB_SECRET, WANDB_KEYS)]
    stub.existing.add(WANDB_SECRET)
    assert all(c.ok for c in preflight(params) if c.name != "client python")
    # Offline check (reach_volume=False): no lookup at all, the secret is reported as not looked up.
    checks = {c.name: c for c in check_remote(params, reach_volume=False)}
    assert "not looked up" in checks["secret wandb"].message and len(stub.lookups) == 2


def test_a_lookup_error_other_than_not_found_is_reported_not_raised(tmp_path, token):
    params = load_params(_project(tmp_path / "p"), hw="a100")

    def offline(name):
        raise ConnectionError("no route to api.modal.com")

    check = next(c for c in preflight(params, lookup=offline) if c.name == "secret wandb")
    assert not check.ok and "ConnectionError" in check.message and check.fix


def test_require_ready_lists_every_problem_with_its_fix(tmp_path, token, monkeypatch):
    monkeypatch.setattr(modal.Secret, "from_name", _SecretStub(existing=set()))
    real_check_python = plan_mod.check_python
    monkeypatch.setattr(plan_mod, "check_python", lambda: real_check_python((3, 14)))
    params = load_params(_project(tmp_path / "p"), hw="a100")
    with pytest.raises(SzflowError) as err:
        require_ready(params)
    text = str(err.value)
    assert "client python" in text and "Python 3.14" in text and "fix: run szflow with Python 3.11" in text
    assert "secret wandb" in text and "fix: modal secret create wandb" in text
    assert FAKE_SECRET not in text


def test_modal_executor_stops_before_any_upload_when_the_secret_is_missing(tmp_path, token, monkeypatch):
    monkeypatch.setattr(modal.Secret, "from_name", _SecretStub(existing=set()))
    root = _project(tmp_path / "p")
    params = load_params(root, hw="a100")
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    with pytest.raises(SzflowError, match="secret wandb"):
        ModalExecutor(root, params).run("train", [], [Path("models/best.pt")], params)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before
