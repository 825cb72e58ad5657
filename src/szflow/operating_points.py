"""The frozen operating points (`models/operating_points.json`): read and checked in one place.

The dev stage tunes the post-processing for each false-alarm target and writes the file; the eval
stage and `szflow detect` read it here, so both refuse the same broken files with the same reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

from szflow.errors import ConfigError
from szflow.postprocess import SETTINGS_KEYS, PostprocessSettings
from szflow.scoring import target_key


def read_operating_points(path: str | Path) -> dict:
    """The whole file: {'detector': {target: settings}, 'baseline': ..., 'checkpoint_step': ...}.

    ConfigError (naming the file) when it is missing, not JSON, or its 'detector' is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: operating points not found (run the dev stage, `dvc repro dev`, or pass "
                          "--operating-points FILE to szflow detect)")
    try:
        frozen = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(frozen["detector"], dict):
            raise TypeError("'detector' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not an operating points file ({type(exc).__name__}: {exc})") from None
    return frozen


def check_checkpoint_step(path: str | Path, frozen: dict, checkpoint_step: int) -> None:
    """ConfigError when the points were tuned for another checkpoint step than `checkpoint_step`."""
    step = frozen.get("checkpoint_step")
    if step is not None and int(step) != int(checkpoint_step):
        raise ConfigError(f"{path}: tuned for checkpoint step {step}, but the checkpoint is step "
                          f"{checkpoint_step}: re-run the dev stage or pass the matching --operating-points")


def detector_point(path: str | Path, frozen: dict, key: str | float) -> dict:
    """The detector's five settings for false-alarm target `key`, complete and in range."""
    try:
        target = target_key(float(key))
    except ValueError:
        raise ConfigError(f"--operating-point {key!r} is not a number of false alarms per 24 h") from None
    points = frozen["detector"]
    if target not in points:
        raise ConfigError(f"{path}: no operating point for {target} FA/24h (available: "
                          f"{', '.join(map(str, points))})")
    point = points[target]
    missing = [name for name in SETTINGS_KEYS if name not in point]
    if missing:
        raise ConfigError(f"{path}: operating point {target} lacks {', '.join(missing)}")
    try:
        PostprocessSettings.from_any(point)  # validates ranges (ConfigError)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: operating point {target}: {exc}") from None
    return {name: point[name] for name in SETTINGS_KEYS}


def load_operating_point(path: str | Path, key: str | float, checkpoint_step: int | None = None) -> dict:
    """The detector's settings for false-alarm target `key` from an `operating_points.json`.

    ConfigError (naming the file) when it is missing or malformed, has no such target, or was
    tuned for another checkpoint step than `checkpoint_step` (the eval stage refuses that too).
    """
    frozen = read_operating_points(path)
    if checkpoint_step is not None:
        check_checkpoint_step(path, frozen, checkpoint_step)
    return detector_point(path, frozen, key)


def uncertified_warning(path: str | Path, key: str | float) -> str | None:
    """The warning an operating point that dev did not certify calls for, or None (certified, or a
    points file from before certification). Such a point is the dev setting with the fewest false
    alarms, not a promise: new data may well show more than the target."""
    point = read_operating_points(path)["detector"].get(target_key(float(key)), {})
    if point.get("certified", True):
        return None
    hours = point.get("hours_scored")
    needed = point.get("hours_needed")
    have = f" in dev's {hours:.1f} h" if hours is not None else ""
    need = f" (certifying it takes at least {needed:.1f} h of dev EEG)" if needed is not None else ""
    return (f"operating point {target_key(float(key))} FA/24h is not certified: no setting's predicted false-alarm "
            f"rate stays at or below the target{have}{need}; expect more false alarms than the target")
