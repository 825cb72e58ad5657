"""Does an operating point chosen on dev keep its false-alarm promise on eval? Compares searches.

    python benchmarks/operating_point_search.py PREDICTIONS_ROOT [--params params.yaml]

PREDICTIONS_ROOT holds dev/tracks.npz and eval/tracks.npz (a finished run's predictions/). For each
search (the full post-processing grid of params.yaml, or a fixed post-processing family with only
the threshold tuned) and each rule (observed FA/24h <= target, or the FA interval's upper end <=
target: certification), it tunes on dev, applies the points to eval and prints, per target: dev
sensitivity and FA (count), eval FA (count), whether eval FA is within the dev interval and at or
below the target. Then, on dev alone (no eval data in the choice), a patient-level 2-fold
cross-validation repeated over 6 random halvings: tune on one half of the dev patients, apply to the
other, for targets 40, 20 and 10 (a half has ~9.5 h, too little to certify lower targets). It prints
the held-out FA/24h against the tuned half's, how many held-out points exceed their target, and the
held-out sensitivity: how much each search overfits. No GPU and no model needed: the tracks are the
saved probabilities. docs/metrics.md quotes its output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from szflow.evaluate import read_tracks
from szflow.scoring import sweep_thresholds, tune_operating_points
from szflow.scoring.intervals import fa_interval, subject_of

CV_TARGETS = (40, 20, 10)
CV_REPEATS = 6

FAMILIES = {
    "threshold only, no post-processing": {},
    "threshold only, smoothing 5 s, min 10 s, merge 10 s": {
        "smoothing_grid_s": [5.0], "min_duration_grid_s": [10.0], "merge_gap_grid_s": [10.0]},
    # The family params.yaml fixes (docs/metrics.md).
    "threshold only, smoothing 5 s, min 20 s, merge 10 s": {
        "smoothing_grid_s": [5.0], "min_duration_grid_s": [20.0], "merge_gap_grid_s": [10.0]},
}


def evaluate(dev, eval_, targets, grid, certify):
    points = tune_operating_points(dev, targets, certify=certify, **grid)
    eval_s = sum(t.duration_s for t in eval_)
    dev_s = sum(t.duration_s for t in dev)
    rows = []
    for key, p in points.items():
        e = sweep_thresholds(eval_, [p["threshold"]], p)[0]
        low, high = fa_interval(p["fp"], dev_s)
        rows.append({"target": key, "dev_sens": p["sensitivity"], "dev_fp": p["fp"], "dev_fa": p["fa_per_24h"],
                     "dev_interval": (low, high), "qualified": p["feasible"],
                     "eval_sens": e["sensitivity"], "eval_fp": e["fp"], "eval_fa": e["fa_per_24h"],
                     "within": low <= e["fa_per_24h"] <= high, "below": e["fa_per_24h"] <= float(key),
                     "eval_h": eval_s / 3600})
    return rows


def cross_validate(dev, grid, certify: bool) -> str:
    subjects = sorted({subject_of(t.recording_id) for t in dev})
    tuned_fp = held_fp = 0
    tuned_h = held_h = 0.0
    exceed = n = 0
    sens = []
    for seed in range(CV_REPEATS):
        half = set(np.random.default_rng(seed).permutation(subjects)[:len(subjects) // 2])
        a = [t for t in dev if subject_of(t.recording_id) in half]
        b = [t for t in dev if subject_of(t.recording_id) not in half]
        for tune_on, held in ((a, b), (b, a)):
            points = tune_operating_points(tune_on, CV_TARGETS, certify=certify, **grid)
            for key, p in points.items():
                r = sweep_thresholds(held, [p["threshold"]], p)[0]
                tuned_fp += p["fp"]
                held_fp += r["fp"]
                tuned_h += sum(t.duration_s for t in tune_on) / 3600
                held_h += sum(t.duration_s for t in held) / 3600
                exceed += r["fa_per_24h"] > float(key)
                n += 1
                sens.append(r["sensitivity"])
    return (f"tuned-half FA/24h {tuned_fp / tuned_h * 24:6.2f}, held-out half {held_fp / held_h * 24:6.2f} "
            f"(x{held_fp / max(tuned_fp, 1):.2f}), held-out > target {exceed}/{n}, "
            f"held-out sensitivity {np.mean(sens):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args()
    ev = yaml.safe_load(args.params.read_text())["eval"]
    targets = ev["operating_points_fa_per_24h"]
    full = {"threshold_grid": ev["threshold_grid"], "smoothing_grid_s": ev["smoothing_grid_s"],
            "min_duration_grid_s": ev["min_duration_grid_s"], "merge_gap_grid_s": ev["merge_gap_grid_s"],
            "hysteresis_low_grid": ev["hysteresis_low_grid"]}
    dev = read_tracks(args.predictions / "dev" / "tracks.npz")
    eval_ = read_tracks(args.predictions / "eval" / "tracks.npz")
    print(f"dev {sum(t.duration_s for t in dev) / 3600:.1f} h, eval {sum(t.duration_s for t in eval_) / 3600:.1f} h")
    searches = {f"full grid ({len(ev['threshold_grid'])} thresholds x the rest)": full}
    for name, family in FAMILIES.items():
        searches[name] = {"threshold_grid": ev["threshold_grid"], **family}
    for name, grid in searches.items():
        for certify in (False, True):
            rule = "upper bound <= target (certified)" if certify else "observed <= target"
            print(f"\n## {name}; rule: {rule}")
            print("| target | qualified on dev | dev sens | dev FA (n) [95% interval] | eval sens | eval FA (n) "
                  "| within dev interval | eval <= target |")
            print("|---|---|---|---|---|---|---|---|")
            for r in evaluate(dev, eval_, targets, grid, certify):
                lo, hi = r["dev_interval"]
                print(f"| {r['target']} | {r['qualified']} | {r['dev_sens']:.3f} | {r['dev_fa']:.2f} ({r['dev_fp']}) "
                      f"[{lo:.2f}, {hi:.2f}] | {r['eval_sens']:.3f} | {r['eval_fa']:.2f} ({r['eval_fp']}) "
                      f"| {r['within']} | {r['below']} |")
    print(f"\n## dev-only patient cross-validation (targets {CV_TARGETS}, {CV_REPEATS} x 2 folds)")
    for name, grid in searches.items():
        for certify in (False, True):
            rule = "certified" if certify else "observed"
            print(f"- {name}; {rule}: {cross_validate(dev, grid, certify)}")


if __name__ == "__main__":
    main()
