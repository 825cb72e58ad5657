"""What the dev and eval drivers both write for a split: the probability tracks, the events at each
operating point (predictions/<split>), every score (metrics/detail/<split>.json) and the headline
numbers (metrics/<split>.json, the DVC metrics)."""

from __future__ import annotations

from pathlib import Path

from szflow import layout
from szflow.evaluate import headline, split_report, write_predictions, write_tracks
from szflow.io_utils import atomic_write_json


def write_split_outputs(workdir: Path, split: str, tracks, base_tracks, points: dict, base_points: dict,
                        checkpoint) -> dict:
    """Write predictions/<split>, metrics/detail/<split>.json and metrics/<split>.json under
    `workdir`; return the full report."""
    out_dir = workdir / layout.predictions_dir(split)
    write_tracks(out_dir / layout.NETWORK_TRACKS, tracks)
    write_tracks(out_dir / layout.BASELINE_TRACKS, base_tracks)
    write_predictions(out_dir, tracks, points)
    report = split_report(split, tracks, base_tracks, points, base_points, checkpoint)
    atomic_write_json(workdir / layout.split_detail(split), report)
    atomic_write_json(workdir / layout.split_metrics(split), headline(report))
    return report
