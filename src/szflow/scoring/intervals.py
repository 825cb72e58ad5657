"""95 % intervals on the rates the pipeline reports, and what it takes to certify a false-alarm target.

False alarms per 24 h: the false-alarm count over the hours scored is treated as Poisson, and its
exact (Garwood) interval is [chi2(a/2; 2k) / 2, chi2(1 - a/2; 2k + 2) / 2] events, divided by the
days scored. Zero false alarms in 18.9 h is thus compatible with up to 4.7 per 24 h.

Sensitivity: a patient-level percentile bootstrap. Seizures of one patient are not independent (the
same patient's seizures look alike), so whole patients are resampled with replacement, the corpus
ratio (hits / seizures, summed over the drawn patients) recomputed each time, and the 2.5 and 97.5
percentiles taken. `BOOTSTRAP_RESAMPLES` draws from a generator seeded with `BOOTSTRAP_SEED`, so
the same predictions always give the same interval.

False alarms cluster by patient: a patient with a seizure-like artifact trait gives several. The
count is then a compound Poisson (clusters Poisson, sizes n_i per patient), whose variance is
`dispersion` = sum(n_i^2) / sum(n_i) times its mean (1: no clustering). Counts and hours divided by
it give the effective Poisson counts the intervals below are computed on (quasi-Poisson).

Certification: an operating point keeps its promise of at most `target` false alarms per 24 h when
a new split like the tuning split (the same hours, the same kind of EEG) will show at most `target`.
That is a prediction, not the rate's confidence interval: it adds the new split's own counting
noise to the tuning split's. Given X false alarms in T1 hours, a new split of T2 hours shows Y;
under a common rate, X given X + Y = n is binomial(n, T1 / (T1 + T2)), so the 95 % prediction
interval of Y is the range of y for which neither P(X <= x | n = x + y) nor P(X >= x | n = x + y)
falls below 2.5 % (the regularised incomplete beta gives both for effective, non-integer counts).
A point is certified when the upper end for a split of the tuning split's own hours is at or below
the target; with no false alarm that needs `hours_to_certify(target)` hours (51.1 h for 2.5/24h,
127.7 h for 1/24h).

Whole splits vary more than their patients' clustering says: over twelve synthetic splits scored
with one model, the splits' false-alarm counts vary 2.0 times as much as each split's own
per-patient dispersion allows (Pearson's statistic per degree of freedom, averaged over the
thresholds whose pooled rate lies within the targets, 1-10/24h; docs/metrics.md). A single tuning
split cannot see that (its own clustering is the only spread it has), so the prediction takes a
`between_split_dispersion` that multiplies the patient dispersion, measured on other splits
(`benchmarks/eval_draws.py --cross`). It widens the prediction and multiplies the hours a target
needs by the same factor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import betainc
from scipy.stats import chi2

from szflow.scoring.events import SECONDS_PER_DAY

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0

INTERVAL_METHODS = {
    "confidence": CONFIDENCE,
    "fa_per_24h": "exact Poisson (Garwood) on the false-alarm count over the hours scored",
    "fa_per_24h_predicted": ("prediction interval of a new split's FA/24h (conditional binomial, "
                             "counts divided by the per-patient dispersion sum(n^2)/sum(n) times "
                             "the between-split dispersion)"),
    "sensitivity": (f"patient-level percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples, "
                    f"seed {BOOTSTRAP_SEED}"),
}


def poisson_count_interval(count: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval of a Poisson mean, given `count` observed events."""
    alpha = 1.0 - confidence
    k = int(count)
    low = 0.0 if k == 0 else float(chi2.ppf(alpha / 2, 2 * k)) / 2
    high = float(chi2.ppf(1 - alpha / 2, 2 * k + 2)) / 2
    return low, high


def fa_interval(false_alarms: int, duration_s: float, confidence: float = CONFIDENCE) -> list[float]:
    """[low, high] false alarms per 24 h for `false_alarms` counted in `duration_s` seconds."""
    if duration_s <= 0:
        return [0.0, float("inf")]
    low, high = poisson_count_interval(false_alarms, confidence)
    days = duration_s / SECONDS_PER_DAY
    return [low / days, high / days]


def fa_dispersion(false_alarms_per_patient: Sequence[float]) -> float:
    """How clustered the false alarms are: sum(n_i^2) / sum(n_i) over patients (at least 1; 1 with
    no false alarm). Every false alarm in a patient of its own gives 1; all of them in one patient
    gives their count."""
    counts = np.asarray(false_alarms_per_patient, dtype=np.float64)
    total = float(counts.sum())
    if total <= 0:
        return 1.0
    return max(1.0, float((counts ** 2).sum()) / total)


def _root(function, increasing: bool) -> float:
    """The y > 0 where the monotone `function` crosses zero (it changes sign on (0, inf))."""
    high = 1.0
    while (function(high) < 0) == increasing:
        high *= 2.0
    return float(brentq(function, 1e-12, high, xtol=1e-10))


def fa_prediction_interval(false_alarms: float, duration_s: float, new_duration_s: float | None = None,
                           dispersion: float = 1.0, confidence: float = CONFIDENCE) -> list[float]:
    """[low, high] FA/24h that a new split of `new_duration_s` seconds (default: `duration_s`) of the
    same kind of EEG will show, given `false_alarms` counted in `duration_s` seconds, clustered
    by patient with `dispersion` (module docstring)."""
    new = float(duration_s if new_duration_s is None else new_duration_s)
    if duration_s <= 0 or new <= 0:
        return [0.0, float("inf")]
    phi = max(1.0, float(dispersion))
    x = float(false_alarms) / phi
    share = float(duration_s) / (float(duration_s) + new)
    tail = (1.0 - confidence) / 2
    # P(X <= x | n = x + y) = I_{1-share}(y, x + 1) falls as y grows; the upper end is where it reaches `tail`.
    high = _root(lambda y: float(betainc(y, x + 1.0, 1.0 - share)) - tail, increasing=False)
    # P(X >= x | n = x + y) = I_share(x, y + 1) grows with y; at y = 0 it is share^x.
    low = 0.0
    if x > 0 and share ** x < tail:
        low = _root(lambda y: float(betainc(x, y + 1.0, share)) - tail, increasing=True)
    scale = phi / new * SECONDS_PER_DAY
    return [low * scale, high * scale]


def hours_to_certify(target_fa_per_24h: float, confidence: float = CONFIDENCE, dispersion: float = 1.0) -> float:
    """Hours of EEG without a single false alarm whose prediction for a split of the same hours just
    reaches the target, false alarms counted with `dispersion`: no split shorter than this can
    certify the target."""
    # With x = 0 and equal hours the upper end solves 0.5^y = tail (effective events, times phi).
    events = np.log((1.0 - confidence) / 2) / np.log(0.5)
    return float(events) * max(1.0, float(dispersion)) / float(target_fa_per_24h) * 24.0


def certifies(false_alarms: float, duration_s: float, target_fa_per_24h: float, dispersion: float = 1.0,
              confidence: float = CONFIDENCE) -> bool:
    """True when a new split of the same hours is predicted to show at most the target."""
    high = fa_prediction_interval(false_alarms, duration_s, duration_s, dispersion, confidence)[1]
    # A relative 1e-9 keeps root-finding noise from failing an exact hit.
    return high <= float(target_fa_per_24h) * (1 + 1e-9)


def subject_of(recording_id: str) -> str:
    """The patient of a recording: the name up to its first '_' (TUSZ 'aaaaaaac_s001_t000' and
    BIDS 'sub-01_ses-01_..' alike)."""
    return str(recording_id).split("_", 1)[0]


def group_by_subject(recordings) -> dict[str, list]:
    """Recordings (anything with a `recording_id`) grouped by patient, in first-seen order."""
    groups: dict[str, list] = defaultdict(list)
    for rec in recordings:
        groups[subject_of(rec.recording_id)].append(rec)
    return dict(groups)


def bootstrap_ratio_interval(numerators: Sequence[float], denominators: Sequence[float],
                             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                             confidence: float = CONFIDENCE) -> list[float] | None:
    """Percentile interval of sum(numerators) / sum(denominators) with whole units (patients)
    resampled with replacement; None when there is nothing to resample (no denominator)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size == 0 or den.sum() <= 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num.size, size=(int(resamples), num.size))
    n, d = num[draws].sum(axis=1), den[draws].sum(axis=1)
    # A draw of patients without seizures has no ratio; it is left out.
    ratios = n[d > 0] / d[d > 0]
    alpha = 1.0 - confidence
    return [float(np.quantile(ratios, alpha / 2)), float(np.quantile(ratios, 1 - alpha / 2))]


def certification_hours(split_hours: dict[str, float], targets_fa_per_24h: Sequence[float],
                        confidence: float = CONFIDENCE,
                        between_split_dispersion: float = 1.0) -> dict[str, dict[str, dict]]:
    """Per split and target: the hours certifying the target takes (with no false alarm at all,
    widened by `between_split_dispersion`), the hours the split has, and whether they suffice.
    {split: {'10': {...}}}."""
    out: dict[str, dict[str, dict]] = {}
    for split, hours in split_hours.items():
        out[split] = {}
        for target in targets_fa_per_24h:
            needed = hours_to_certify(float(target), confidence, between_split_dispersion)
            out[split][f"{float(target):g}"] = {"hours_needed": needed, "hours": float(hours),
                                                "enough": float(hours) >= needed,
                                                "between_split_dispersion": max(1.0, float(between_split_dispersion))}
    return out


def format_certification_hours(table: dict[str, dict[str, dict]]) -> str:
    """Lines saying, per split, which false-alarm targets its hours can certify."""
    dispersion = next((row["between_split_dispersion"] for targets in table.values() for row in targets.values()
                       if "between_split_dispersion" in row), 1.0)
    lines = [(f"hours to certify a false-alarm target (the {CONFIDENCE:.0%} prediction for a split of the "
             f"same hours at or below it, even with no false alarm at all; between-split dispersion "
             f"{dispersion:g}):")]
    for split, targets in table.items():
        cells = [f"{key}/24h needs {row['hours_needed']:.1f} h ({'ok' if row['enough'] else 'too few'})"
                 for key, row in targets.items()]
        hours = next(iter(targets.values()))["hours"] if targets else 0.0
        lines.append(f"  {split} ({hours:.1f} h): " + "; ".join(cells))
    return "\n".join(lines)
