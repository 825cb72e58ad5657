"""Corpus data: annotation files (.csv_bi, .csv, _events.tsv), corpus discovery and summaries."""

from __future__ import annotations

from typing import Any

from szflow.data.annotations import (
    SEIZURE_LABELS,
    Annotation,
    Event,
    read_annotation,
    read_csv,
    read_csv_bi,
    read_events_tsv,
    write_csv,
    write_csv_bi,
    write_events_tsv,
)

# Discovery and summaries need pandas, which takes a noticeable time to import; readers of a
# single annotation file should not pay for it.
_LAZY = {
    "discover_corpus": "szflow.data.discover",
    "summarise_corpus": "szflow.data.summary",
    "format_summary": "szflow.data.summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'szflow.data' has no attribute {name!r}")


__all__ = [
    "SEIZURE_LABELS",
    "Annotation",
    "Event",
    "discover_corpus",
    "format_summary",
    "read_annotation",
    "read_csv",
    "read_csv_bi",
    "read_events_tsv",
    "summarise_corpus",
    "write_csv",
    "write_csv_bi",
    "write_events_tsv",
]
