"""Typed errors. Every error a user can trigger with bad input is one of these, and names the file."""

from __future__ import annotations

from pathlib import Path


class SzflowError(Exception):
    """Base class for errors szflow reports to the user (one line, no traceback needed)."""


class ConfigError(SzflowError):
    """A params file has an unknown key, a wrong type or a bad value."""


class InputFileError(SzflowError):
    """A data file cannot be used. `path` and `reason` are kept for reports."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AnnotationError(InputFileError):
    """A .csv_bi / .csv / _events.tsv file is malformed."""


class EdfError(InputFileError):
    """An EDF file is truncated, has a bad header, lacks an electrode, or disagrees with its annotation."""


class CheckpointError(SzflowError):
    """A checkpoint is unreadable or belongs to another model configuration."""
