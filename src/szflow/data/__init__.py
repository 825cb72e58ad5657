"""Corpus data: annotation files (.csv_bi, .csv, _events.tsv), corpus discovery and summaries."""

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

__all__ = [
    "SEIZURE_LABELS",
    "Annotation",
    "Event",
    "read_annotation",
    "read_csv",
    "read_csv_bi",
    "read_events_tsv",
    "write_csv",
    "write_csv_bi",
    "write_events_tsv",
]
