"""Benchmark (issue 20): the current model on an earlier commit's synthetic corpus, beside that
commit's own model's numbers on the same recordings: eval quality before and after a change
without the confound of a changed eval split.

    git worktree add /tmp/old a77cbfa        # the commit before the change (its docs hold its numbers)
    (cd /tmp/old && PYTHONPATH=src python -c '...generate the dev and eval splits...')
    python benchmarks/earlier_corpus.py --corpus /tmp/old/data/synth [--root RUN]
        [--earlier "0.917@7.83" "0.900@10.44" "0.842@5.22" "0.783@5.22"]
        [--earlier-params /tmp/old/params.yaml] [--work DIR]

The corpus (dev and eval, as the earlier commit's `synth` wrote them; a train split is not needed) is
preprocessed and cached by the current code and both splits are scored by the current checkpoint
(`--root`'s models/best.pt and baseline). Reported on its eval:
  - frame AUROC;
  - OVLP sensitivity (patient-bootstrap interval) and FA/24h (Poisson interval) at the operating
    points the current rule tunes and certifies on its dev (`szflow.evaluate.tune`): what the
    pipeline would report on that corpus today;
  - matched false alarms: for each earlier (sensitivity @ FA/24h) pair, the best OVLP sensitivity of
    the current model over the threshold grid of the fixed post-processing family (the 10 point's
    settings) at no more than that FA/24h on the same eval. This reads the eval curve itself, so it
    favours the current model a little (the earlier numbers were at dev-chosen points); the
    certified points above do not. With `--earlier-params`, the same over the earlier grid
    (every setting, not the fixed family).
The tracks are kept in WORK (tracks-<split>.npz): a rerun scores them again without inference.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from common import REPO_ROOT, emit, print_header

from szflow import layout
from szflow.cache import build_cache
from szflow.config import EVAL_SEARCH_KEYS, load_params
from szflow.evaluate import read_tracks, score_at_operating_points, split_tracks, tune, write_tracks
from szflow.model.checkpoint import load_checkpoint
from szflow.scoring.sweep import sweep_thresholds, target_key, tune_operating_points
from szflow.stages.preprocess import preprocess_corpus

SPLITS = ("dev", "eval")


def parse_earlier(values: list[str]) -> list[tuple[float, float]]:
    """'0.917@7.83' -> (0.917, 7.83): an earlier eval OVLP sensitivity at its FA/24h."""
    pairs = []
    for value in values:
        sensitivity, _, fa = value.partition("@")
        pairs.append((float(sensitivity), float(fa)))
    return pairs


def best_at(rows: list[dict], fa_per_24h: float) -> dict | None:
    """The swept row with the highest sensitivity at no more than `fa_per_24h` (None: none gets there)."""
    feasible = [row for row in rows if row["fa_per_24h"] <= fa_per_24h + 1e-9]
    return max(feasible, key=lambda row: (row["sensitivity"], -row["fa_per_24h"]), default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the earlier corpus root (edf/dev, edf/eval)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the run whose models/ are measured")
    parser.add_argument("--earlier", nargs="*", default=[], help="earlier eval OVLP numbers, as SENS@FA")
    parser.add_argument("--earlier-params", type=Path, default=None,
                        help="the earlier commit's params.yaml: also score the points its rule picks")
    parser.add_argument("--work", type=Path, default=Path("/tmp/szflow_bench/earlier_corpus"))
    args = parser.parse_args()
    header = print_header("earlier_corpus")
    params = load_params(args.root, overrides={"data.source": "synthetic", "data.root": str(args.corpus.resolve())})
    tracks = {}
    checkpoint = load_checkpoint(args.root / layout.BEST_CHECKPOINT)
    for split in SPLITS:
        stored = args.work / f"tracks-{split}-step{checkpoint.step}.npz"
        if not stored.is_file():
            if not (args.work / "cache" / split).is_dir():
                preprocess_corpus(params, args.work / "preprocess", progress=True)
                build_cache(args.work / "preprocess", args.work / "cache", splits=SPLITS, progress=True)
            network, _, _ = split_tracks(params, args.work / "cache", split, args.root / layout.BEST_CHECKPOINT,
                                         args.root / layout.BASELINE_MODEL)
            write_tracks(stored, network)
        tracks[split] = read_tracks(stored)
    points = tune(params, tracks["dev"])
    scores = score_at_operating_points(tracks["eval"], points)
    hours = {split: sum(t.duration_s for t in tracks[split]) / 3600 for split in SPLITS}
    print(f"checkpoint step {checkpoint.step}; dev {len(tracks['dev'])} recordings {hours['dev']:.1f} h, "
          f"eval {len(tracks['eval'])} recordings {hours['eval']:.1f} h; eval frame AUROC {scores['auroc']:.4f}")
    print("\nAt the points tuned and certified on this corpus's dev (current rule):")
    print(f"{'target':>6} {'certified':>9} {'threshold':>9} {'OVLP sens [95 %]':>22} {'FA/24h [95 %]':>22}")
    for key, point in points.items():
        ovlp = scores["operating_points"][key]["ovlp"]
        low, high = ovlp["sensitivity_interval"]
        fa_low, fa_high = ovlp["fa_per_24h_interval"]
        print(f"{key:>6} {point.get('certified')!s:>9} {point['threshold']:9.3f} "
              f"{ovlp['sensitivity']:.3f} [{low:.3f}, {high:.3f}]   {ovlp['fa_per_24h']:6.2f} [{fa_low:.2f}, {fa_high:.2f}]")
    earlier_rule, matched_grid = {}, []
    if args.earlier_params is not None:
        grid = yaml.safe_load(args.earlier_params.read_text())["eval"]
        earlier_rule = tune_operating_points(tracks["dev"], grid["operating_points_fa_per_24h"],
                                             **{key: grid[key] for key in EVAL_SEARCH_KEYS})
        earlier_scores = score_at_operating_points(tracks["eval"], earlier_rule)
        print(f"\nAt the points the earlier rule picks on this dev ({args.earlier_params}: best dev sensitivity at <= "
              "the target over its whole grid, not certified):")
        print(f"{'target':>6} {'dev sens/FA':>13} {'settings':>40} {'eval OVLP sens / FA/24h':>24}")
        for key, point in earlier_rule.items():
            ovlp = earlier_scores["operating_points"][key]["ovlp"]
            settings = (f"t={point['threshold']:g} s={point['smoothing_s']:g} min={point['min_duration_s']:g} "
                        f"gap={point['merge_gap_s']:g} h={point['hysteresis_low']}")
            print(f"{key:>6} {point['sensitivity']:.3f}/{point['fa_per_24h']:6.2f} {settings:>40} "
                  f"{ovlp['sensitivity']:>14.3f} / {ovlp['fa_per_24h']:6.2f}")
            earlier_rule[key] = {**point, "eval_ovlp": ovlp}
        if args.earlier:
            # The eval curve itself over the earlier grid: the most the current model reaches at each
            # earlier FA/24h on these recordings with the earlier post-processing (an upper bound).
            fas = [fa for _, fa in parse_earlier(args.earlier)]
            best = tune_operating_points(tracks["eval"], fas, **{key: grid[key] for key in EVAL_SEARCH_KEYS})
            print("\nMatched false alarms over the earlier grid on the same eval (current model, best setting):")
            for sensitivity, fa in parse_earlier(args.earlier):
                point = best[target_key(fa)]
                print(f"{sensitivity:>13.3f} @ {fa:6.2f} {point['sensitivity']:>13.3f} @ {point['fa_per_24h']:6.2f} "
                      f"{point['sensitivity'] - sensitivity:+10.3f}")
                matched_grid.append({"earlier_sensitivity": sensitivity, "earlier_fa_per_24h": fa, "current": point})
    family = points[max(points, key=float)]
    rows = sweep_thresholds(tracks["eval"], params.eval.threshold_grid, postprocess=family)
    matched = []
    if args.earlier:
        print("\nMatched false alarms on the same eval (current model, threshold swept, the 10 point's family):")
        print(f"{'earlier sens @ FA/24h':>22} {'current sens @ FA/24h':>22} {'threshold':>9} {'difference':>10}")
    for sensitivity, fa in parse_earlier(args.earlier):
        row = best_at(rows, fa)
        matched.append({"earlier_sensitivity": sensitivity, "earlier_fa_per_24h": fa, "current": row})
        if row is None:
            print(f"{sensitivity:>13.3f} @ {fa:6.2f} {'(no threshold gets there)':>22}")
            continue
        print(f"{sensitivity:>13.3f} @ {fa:6.2f} {row['sensitivity']:>13.3f} @ {row['fa_per_24h']:6.2f} "
              f"{row['threshold']:9.3f} {row['sensitivity'] - sensitivity:+10.3f}")
    emit({"benchmark": "earlier_corpus", "machine": header, "corpus": str(args.corpus), "hours": hours,
          "checkpoint_step": checkpoint.step, "eval_auroc": scores["auroc"],
          "points": {key: {"certified": point.get("certified"), "threshold": point["threshold"],
                           "ovlp": scores["operating_points"][key]["ovlp"]} for key, point in points.items()},
          "earlier_rule": earlier_rule, "sweep": rows, "matched": matched,
          "matched_earlier_grid": matched_grid})


if __name__ == "__main__":
    main()
