"""Model selection on the validation patients: their scores with the dev/eval scorer, and the
best-so-far bookkeeping that decides best.pt and early stopping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from szflow.config import Params
from szflow.scoring import ProbabilityTrack, auroc, target_key, tune_operating_points


def sensitivity_key(fa_per_24h: int) -> str:
    """Metric name of the selection sensitivity, e.g. 'val_sensitivity_at_10fa' (never a float key)."""
    return f"val_sensitivity_at_{int(fa_per_24h)}fa"


def selection_target(tracks: Sequence[ProbabilityTrack], fa_per_24h: float) -> float:
    """The FA/24h bound the selection sensitivity is read at: `fa_per_24h`, or one false alarm's worth
    when the validation recordings are too short for that (under 86,400 / fa_per_24h s: 2.4 h for
    10 FA/24h). Otherwise a single false alarm already exceeds the bound, the sensitivity is 0 at
    every setting with any alarm, and best.pt freezes at whichever early step happened to raise none."""
    total_s = math.fsum(float(t.duration_s) for t in tracks)
    one_alarm = 1.0 / total_s * 86_400.0 if total_s > 0 else math.inf
    return max(float(fa_per_24h), one_alarm)


def validation_metrics(tracks: Sequence[ProbabilityTrack], params: Params) -> dict[str, float]:
    """Scores of validation tracks with the dev/eval scorer: the best OVLP sensitivity over the
    post-processing grid at <= `selection_target` FA/24h (0 when no setting gets there), its
    FA/24h and threshold, and frame AUROC. String keys only."""
    target = selection_target(tracks, params.train.selection_fa_per_24h)
    points = tune_operating_points(tracks, [target], **params.eval.tuning_grid())
    point = points[target_key(target)]
    feasible = bool(point["feasible"])
    return {
        sensitivity_key(params.train.selection_fa_per_24h): float(point["sensitivity"]) if feasible else 0.0,
        "val_fa_per_24h": float(point["fa_per_24h"]),
        "val_threshold": float(point["threshold"]),
        "val_selection_fa_per_24h": target,
        "val_auroc": float(auroc(tracks)),
    }


def _rank_value(value: float | None) -> float:
    return -math.inf if value is None or math.isnan(value) else float(value)


@dataclass
class Selection:
    """Best-so-far bookkeeping for best.pt and early stopping (saved in last.pt)."""

    best_score: list[float] | None = None  # [sensitivity at <= target FA/24h, AUROC]
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    evals: int = 0
    evals_without_improvement: int = 0

    @staticmethod
    def score_of(metrics: dict[str, float], sens_key: str) -> list[float]:
        """Sensitivity first, AUROC as the tie-break; NaN (no seizures in validation) ranks lowest."""
        return [_rank_value(metrics[sens_key]), _rank_value(metrics["val_auroc"])]

    def update(self, step: int, metrics: dict[str, float], sens_key: str) -> bool:
        """Record one evaluation; True when it beats every earlier one (strictly)."""
        score = self.score_of(metrics, sens_key)
        self.evals += 1
        if self.best_score is None or tuple(score) > tuple(self.best_score):
            self.best_score, self.best_step, self.best_metrics = score, step, dict(metrics)
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        return False

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_step": self.best_step, "best_metrics": self.best_metrics,
                "evals": self.evals, "evals_without_improvement": self.evals_without_improvement}

    @classmethod
    def from_state(cls, state: dict) -> Selection:
        return cls(best_score=None if state["best_score"] is None else list(state["best_score"]),
                   best_step=int(state["best_step"]), best_metrics=dict(state["best_metrics"]),
                   evals=int(state["evals"]), evals_without_improvement=int(state["evals_without_improvement"]))
