"""Is there a Modal token? Answered from the environment and ~/.modal.toml alone: no network, no
`import modal`, so a missing token is reported within milliseconds, before any work.

The token itself is never returned, logged or stored: only where it was found.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from szflow.errors import SzflowError

TOKEN_HELP = (
    "no Modal token found: run `modal token new` (it writes ~/.modal.toml), or set "
    "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET in the environment; then retry. "
    "To run on this machine instead: `dvc exp run -S hw=local`."
)


class ModalAuthError(SzflowError):
    """No usable Modal token: nothing remote can run."""


@dataclass(frozen=True)
class TokenStatus:
    present: bool
    source: str  # "environment", "<config path> [profile]", or "" when absent

    def describe(self) -> str:
        return f"Modal token found ({self.source})" if self.present else TOKEN_HELP


def _config_path() -> Path:
    # Same resolution as modal.config: MODAL_CONFIG_PATH, else ~/.modal.toml.
    return Path(os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml"))


def _profile_values(path: Path) -> tuple[str, dict]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return "", {}
    profile = os.environ.get("MODAL_PROFILE") or next(
        (name for name, values in data.items() if isinstance(values, dict) and values.get("active") is True),
        "default",
    )
    values = data.get(profile)
    return profile, values if isinstance(values, dict) else {}


def modal_token_status() -> TokenStatus:
    """Each key from MODAL_<KEY> first, else the active profile of the config file (as Modal does)."""
    path = _config_path()
    profile, values = _profile_values(path)
    token_id = os.environ.get("MODAL_TOKEN_ID") or values.get("token_id")
    token_secret = os.environ.get("MODAL_TOKEN_SECRET") or values.get("token_secret")
    if not (token_id and token_secret):
        return TokenStatus(False, "")
    from_env = "MODAL_TOKEN_ID" in os.environ and "MODAL_TOKEN_SECRET" in os.environ
    return TokenStatus(True, "environment" if from_env else f"{path} [{profile}]")


def require_modal_token() -> TokenStatus:
    status = modal_token_status()
    if not status.present:
        raise ModalAuthError(TOKEN_HELP)
    return status
