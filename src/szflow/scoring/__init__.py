"""Scoring: NEDC v6 OVLP and TAES, SzCORE via `timescoring`, corpus sums, sweeps and curves.

Input unit: per recording, reference and hypothesis seizure intervals (seconds) and the
recording's duration (`RecordingEvents`); every result is summed over recordings.
"""

from szflow.scoring.corpus import SCORERS, format_score_table, score_corpus
from szflow.scoring.curves import auroc, frame_labels, pr_curve, roc_curve
from szflow.scoring.events import RecordingEvents, fa_per_24h
from szflow.scoring.folders import pair_folders, read_folders, score_folders
from szflow.scoring.nedc import ovlp_counts, score_ovlp, score_taes, taes_counts
from szflow.scoring.sweep import ProbabilityTrack, sweep_thresholds, target_key, tune_operating_points
from szflow.scoring.szcore import SZCORE, SzcoreParams, score_szcore_event, score_szcore_sample

__all__ = [
    "SCORERS",
    "SZCORE",
    "ProbabilityTrack",
    "RecordingEvents",
    "SzcoreParams",
    "auroc",
    "fa_per_24h",
    "format_score_table",
    "frame_labels",
    "ovlp_counts",
    "pair_folders",
    "pr_curve",
    "read_folders",
    "roc_curve",
    "score_corpus",
    "score_folders",
    "score_ovlp",
    "score_szcore_event",
    "score_szcore_sample",
    "score_taes",
    "sweep_thresholds",
    "taes_counts",
    "target_key",
    "tune_operating_points",
]
