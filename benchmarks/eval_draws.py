"""Do the dev-certified operating points keep their promise on new eval data? Independent eval draws.

    python benchmarks/eval_draws.py [--workdir .] [--draws 5] [--first-seed 1001 | --seeds S ...]
        [--scratch DIR] [--tracks DIR] [--cross] [--operating-points FILE ...]

For each draw, a new synthetic eval split (the params' synth config, the eval split drawn from seed
`first-seed + i`) is written, preprocessed and cached in a scratch folder, predicted with the
trained model (`<workdir>/models/best.pt`, the baseline `models/baseline.json`) and scored at the
points frozen on dev (`models/operating_points.json`); nothing is tuned. It prints, per draw and
point, the eval FA/24h (false alarms, hours), whether it lies within the FA range dev stated for
the point (its prediction for a split of the draw's hours; for points files from before
predictions, the rate's interval) and at or below the target, the OVLP sensitivity with its
interval, and the baseline's sensitivity at the same point; then per point the mean FA/24h over the
draws against the target, and the fraction of (draw, certified point) pairs within dev's range.
`--cross` then lets every split (the workdir's dev and eval predictions and each draw) certify
points for every other: how often the scored split's FA lies within the tuning split's prediction,
whichever split happens to be the tuning one, and, at each frozen point's setting, how much the
splits' false-alarm counts vary beyond what each split's patient clustering accounts for.

Cost: each draw is a full eval split (~43 h of EEG at the default params): synthesis, preprocessing
and inference, ~7.5 min per draw alone on a 2-core CPU. `--keep` keeps the scratch folders;
`--tracks DIR` keeps only each draw's probability tracks (a few MB) and reads them back next time.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from szflow import layout, synth
from szflow.cache import build_cache
from szflow.config import Params, SynthConfig, load_params
from szflow.evaluate import read_tracks, score_at_operating_points, split_tracks, tune, write_tracks
from szflow.operating_points import read_operating_points
from szflow.postprocess import PostprocessSettings
from szflow.scoring.events import SECONDS_PER_DAY
from szflow.scoring.intervals import fa_interval
from szflow.scoring.sweep import sweep_thresholds
from szflow.stages.preprocess import preprocess_corpus
from szflow.synth.corpus import write_planned_recording
from szflow.synth.plan import make_plan

SPLIT = "eval"


def generate_eval_split(out: Path, config: SynthConfig, seed: int) -> None:
    """The eval split of the synthetic corpus `config` describes, drawn from `seed`, under `out`.

    Uses `szflow.synth.generate_split(out, config, split, seed)` where the package has it; otherwise
    draws the whole plan from `seed` (through `synth.eval_seed` when the config has it) and writes
    only its eval recordings (no deliberately broken files: they would only be skipped)."""
    generate = getattr(synth, "generate_split", None)
    if generate is not None:
        generate(out, config, SPLIT, seed)
        return
    update = {"eval_seed": seed} if "eval_seed" in type(config).model_fields else {"seed": seed}
    plan = make_plan(config.model_copy(update=update))
    out.mkdir(parents=True, exist_ok=True)
    for spec in plan.split(SPLIT):
        if spec.broken is None:
            write_planned_recording(out, spec)


def draw_tracks(workdir: Path, params: Params, seed: int, scratch: Path, eval_patients: int | None,
                background_recordings: int | None = None):
    """Network and baseline tracks of one eval draw, and the checkpoint step."""
    corpus = scratch / "corpus"
    config = params.synth
    if eval_patients is not None:
        config = config.model_copy(update={"patients": {**config.patients, SPLIT: eval_patients}})
    if background_recordings is not None:
        counts = config.background_recordings.model_copy(update={SPLIT: background_recordings})
        config = config.model_copy(update={"background_recordings": counts})
    generate_eval_split(corpus, config, seed)
    drawn = load_params(workdir, overrides={"data.source": "synthetic", "data.root": str(corpus)})
    preprocess_corpus(drawn, scratch / "preprocess", progress=False)
    build_cache(scratch / "preprocess", scratch / "cache", splits=(SPLIT,), progress=False)
    tracks, base_tracks, checkpoint = split_tracks(drawn, scratch / "cache", SPLIT,
                                                   workdir / layout.BEST_CHECKPOINT,
                                                   workdir / layout.BASELINE_MODEL)
    return tracks, base_tracks, int(checkpoint.step)


def stored_draw_tracks(workdir: Path, params: Params, seed: int, scratch: Path, eval_patients: int | None,
                       background_recordings: int | None, store: Path | None):
    """`draw_tracks`, kept in (and read back from) `store`/<seed>/ when a store is given: scoring
    other operating points on the same draws then takes seconds instead of a new inference."""
    folder = None if store is None else store / str(seed)
    if folder is not None and (folder / "step.json").is_file():
        step = int(json.loads((folder / "step.json").read_text())["checkpoint_step"])
        return read_tracks(folder / "tracks.npz"), read_tracks(folder / "baseline_tracks.npz"), step
    tracks, base_tracks, step = draw_tracks(workdir, params, seed, scratch, eval_patients, background_recordings)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_tracks(folder / "tracks.npz", tracks)
        write_tracks(folder / "baseline_tracks.npz", base_tracks)
        # Written last: its presence says the draw is complete.
        (folder / "step.json").write_text(json.dumps({"checkpoint_step": step}))
    return tracks, base_tracks, step


def scores_at(tracks, base_tracks, frozen: dict) -> dict:
    return {"network": score_at_operating_points(tracks, frozen["detector"]),
            "baseline": score_at_operating_points(base_tracks, frozen["baseline"])}


def dev_intervals(workdir: Path, frozen: dict) -> dict[str, list[float] | None]:
    """The FA interval dev states for each detector point: from the points file, or (points frozen
    before intervals existed) from the point's false-alarm count and the dev hours of the dev metrics."""
    out = {}
    duration = None
    for path in (workdir / layout.split_detail("dev"), workdir / layout.split_metrics("dev")):
        if path.is_file() and "duration_s" in json.loads(path.read_text()):
            duration = float(json.loads(path.read_text())["duration_s"])
            break
    for key, point in frozen["detector"].items():
        if point.get("fa_per_24h_interval") is not None:
            out[key] = point["fa_per_24h_interval"]
        elif duration is not None and "fp" in point:
            out[key] = fa_interval(int(point["fp"]), duration)
        else:
            out[key] = None
    return out


def _interval(values) -> str:
    return "n/a" if not values else f"[{values[0]:.2f}, {values[1]:.2f}]"


def report(draws: dict[int, dict], frozen: dict, stated: dict[str, list[float] | None]) -> str:
    lines = [("| draw seed | target | certified on dev | dev-stated FA range | eval FA/24h (n, h) | within dev range "
             "| <= target | OVLP sens [95 %] | baseline sens | network > baseline |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    within_pairs: list[bool] = []
    under_upper_pairs: list[bool] = []  # the promise itself: eval FA at or below dev's upper bound
    within_all: list[bool] = []
    fa_by_point: dict[str, list[float]] = {}
    above_baseline = []
    for seed, scores in draws.items():
        for key, point in scores["network"]["operating_points"].items():
            ovlp = point["ovlp"]
            cert = point["certification"]
            # Points certified on a prediction state it for these hours; older files, the rate's interval.
            dev_ci = cert.get("fa_per_24h_predicted") or stated.get(key)
            within = dev_ci is not None and dev_ci[0] <= ovlp["fa_per_24h"] <= dev_ci[1]
            within_all.append(within)
            below = ovlp["fa_per_24h"] <= float(key) * (1 + 1e-12)
            base = scores["baseline"]["operating_points"][key]["ovlp"]["sensitivity"]
            if cert["certified"]:
                within_pairs.append(within)
                under_upper_pairs.append(dev_ci is not None and ovlp["fa_per_24h"] <= dev_ci[1])
            fa_by_point.setdefault(key, []).append(ovlp["fa_per_24h"])
            above_baseline.append(ovlp["sensitivity"] > base)
            lines.append(
                f"| {seed} | {key} | {cert['certified']} | {_interval(dev_ci)} | {ovlp['fa_per_24h']:.2f} "
                f"({ovlp['fp']}, {point['duration_s'] / 3600:.1f}) | {within} | {below} | "
                f"{ovlp['sensitivity']:.3f} {_interval(ovlp.get('sensitivity_interval'))} | {base:.3f} | "
                f"{ovlp['sensitivity'] > base} |")
    lines += ["", "| target | certified on dev | mean eval FA/24h over draws | <= target |", "|---|---|---|---|"]
    for key, values in fa_by_point.items():
        certified = bool(frozen["detector"][key].get("certified", False))
        mean = float(np.mean(values))
        lines.append(f"| {key} | {certified} | {mean:.2f} | {mean <= float(key)} |")
    share = f"{sum(within_pairs)}/{len(within_pairs)}" if within_pairs else "0/0 (no certified point)"
    under = f"{sum(under_upper_pairs)}/{len(under_upper_pairs)}" if under_upper_pairs else "0/0"
    lines += ["", f"(draw, certified point) pairs with eval FA within dev's range: {share}",
              f"(draw, certified point) pairs with eval FA at or below the upper end of dev's range: {under}",
              (f"(draw, point) pairs, certified or not, with eval FA within dev's range: "
              f"{sum(within_all)}/{len(within_all)}"),
              f"(draw, point) pairs with the network above the baseline: {sum(above_baseline)}/{len(above_baseline)}"]
    return "\n".join(lines)


def poisson_rule_points(params: Params, tracks) -> dict[str, dict]:
    """The first certification rule, for comparison: among the family's thresholds, the most
    sensitive whose rate's exact Poisson interval ends at or below the target; the interval it
    states is that Poisson interval."""
    grid = params.eval.tuning_grid()
    fixed = {key: values for key, values in grid.items() if key != "threshold_grid"}
    if any(len(values) != 1 for values in fixed.values()):
        raise SystemExit("the first-rule comparison needs a post-processing family with only the threshold tuned")
    family = {"smoothing_s": fixed["smoothing_grid_s"][0], "min_duration_s": fixed["min_duration_grid_s"][0],
              "merge_gap_s": fixed["merge_gap_grid_s"][0], "hysteresis_low": fixed["hysteresis_low_grid"][0]}
    duration = sum(t.duration_s for t in tracks)
    rows = sweep_thresholds(tracks, grid["threshold_grid"], family)
    points = {}
    for target in params.eval.operating_points_fa_per_24h:
        fits = [row for row in rows if fa_interval(row["fp"], duration)[1] <= float(target) * (1 + 1e-12)]
        if fits:
            best = max(fits, key=lambda row: (row["sensitivity"], -row["fa_per_24h"]))
            points[f"{float(target):g}"] = {**family, "threshold": best["threshold"], "certified": True,
                                            "stated": fa_interval(best["fp"], duration)}
    return points


def cross_splits(params: Params, splits: dict[str, list], first_rule: bool = False) -> str:
    """Every split certifies points for every other: is the certification rule calibrated, whichever
    split happens to be the tuning split? Per (tuning split, scored split, certified point): the scored
    FA/24h within what the tuning split stated (its prediction for the scored hours; with
    `first_rule`, its rate's Poisson interval), and at or below the target."""
    if first_rule:
        tuned = {name: poisson_rule_points(params, tracks) for name, tracks in splits.items()}
    else:
        tuned = {name: {key: point for key, point in tune(params, tracks).items() if point["certified"]}
                 for name, tracks in splits.items()}
    within: dict[str, list[bool]] = {}
    below: dict[str, list[bool]] = {}
    for tuning, certified in tuned.items():
        for scored, tracks in splits.items():
            if scored == tuning or not certified:
                continue
            for key, point in score_at_operating_points(tracks, certified)["operating_points"].items():
                fa = point["ovlp"]["fa_per_24h"]
                if first_rule:
                    low, high = certified[key]["stated"]
                    within.setdefault(key, []).append(low <= fa <= high)
                else:
                    within.setdefault(key, []).append(point["certification"]["fa_within_prediction"])
                below.setdefault(key, []).append(fa <= float(key) * (1 + 1e-12))
    stated = "the rate's Poisson interval" if first_rule else "the prediction"
    lines = [(f"| target | certified by (splits) | (tuning, scored) pairs | scored FA within {stated} "
              "| scored FA <= target |"), "|---|---|---|---|---|"]
    for key, inside in within.items():
        by = sum(1 for points in tuned.values() if key in points)
        lines.append(f"| {key} | {by}/{len(tuned)} | {len(inside)} | {sum(inside)}/{len(inside)} "
                     f"| {sum(below[key])}/{len(below[key])} |")
    total = [w for values in within.values() for w in values]
    under = [b for values in below.values() for b in values]
    lines += ["", (f"all certified (tuning, scored) pairs within {stated}: {sum(total)}/{len(total)}; "
                   f"at or below the target: {sum(under)}/{len(under)}")]
    return "\n".join(lines)


def _excess_dispersion(counts: np.ndarray, hours: np.ndarray, phi: np.ndarray) -> tuple[float, float]:
    """Pearson's statistic per degree of freedom of the splits' false-alarm counts against the pooled
    rate (mu_s = T_s * sum X / sum T): over the splits' own patient clustering phi_s, and over Poisson."""
    expected = hours * counts.sum() / hours.sum()
    squares = (counts - expected) ** 2 / expected
    return float((squares / phi).sum()) / (len(counts) - 1), float(squares.sum()) / (len(counts) - 1)


def between_split_dispersion(splits: dict[str, list], frozen: dict) -> str:
    """Do whole splits vary more than the certification assumes? At each distinct setting of the
    frozen detector points, every split's false-alarm count X_s over its hours T_s against the pooled
    rate (mu_s = T_s * sum X / sum T): Pearson's sum (X_s - mu_s)^2 / (mu_s * phi_s) / (splits - 1),
    with phi_s the split's own per-patient dispersion. About 1 when a split's count varies as its
    patient clustering says (what the prediction interval assumes); above 1, splits differ by more."""
    lines = [("| setting (threshold) | points | false alarms per split | between-split dispersion "
              "over the patient clustering | over Poisson |"), "|---|---|---|---|---|"]
    settings: dict[tuple, list[str]] = {}
    for key, point in frozen["detector"].items():
        settings.setdefault(PostprocessSettings.from_any(point), []).append(key)
    names = list(splits)
    hours = np.array([sum(t.duration_s for t in splits[name]) for name in names])
    for keys in settings.values():
        point = frozen["detector"][keys[0]]
        rows = [sweep_thresholds(splits[name], [point["threshold"]], point)[0] for name in names]
        counts = np.array([row["fp"] for row in rows], dtype=np.float64)
        if counts.sum() == 0:
            continue
        over_patients, over_poisson = _excess_dispersion(counts, hours,
                                                         np.array([row["fa_dispersion"] for row in rows]))
        lines.append(f"| {point['threshold']:g} | {', '.join(keys)} | "
                     f"{', '.join(f'{n} {int(c)}' for n, c in zip(names, counts))} | {over_patients:.2f} "
                     f"| {over_poisson:.2f} |")
    return "\n".join(lines)


def between_split_dispersion_over_grid(splits: dict[str, list], params: Params) -> tuple[str, float | None]:
    """The between-split dispersion (as `between_split_dispersion`) at every threshold of the params'
    grid, the rest of the post-processing at the family's first setting, and its mean over the
    thresholds whose pooled FA/24h lies within the targets (where operating points can sit): the
    value `eval.between_split_dispersion` holds. Returns the table and that mean (None when no
    threshold's rate lies within the targets)."""
    grid = params.eval.tuning_grid()
    family = {"smoothing_s": grid["smoothing_grid_s"][0], "hysteresis_low": grid["hysteresis_low_grid"][0],
              "min_duration_s": grid["min_duration_grid_s"][0], "merge_gap_s": grid["merge_gap_grid_s"][0]}
    targets = params.eval.operating_points_fa_per_24h
    names = list(splits)
    hours = np.array([sum(t.duration_s for t in splits[name]) for name in names])
    sweeps = [sweep_thresholds(splits[name], grid["threshold_grid"], family) for name in names]
    lines = ["| threshold | pooled FA/24h | within the targets | between-split dispersion |", "|---|---|---|---|"]
    within: list[float] = []
    for k, threshold in enumerate(grid["threshold_grid"]):
        counts = np.array([rows[k]["fp"] for rows in sweeps], dtype=np.float64)
        if counts.sum() == 0:
            continue
        excess = _excess_dispersion(counts, hours, np.array([rows[k]["fa_dispersion"] for rows in sweeps]))[0]
        rate = counts.sum() / hours.sum() * SECONDS_PER_DAY
        inside = min(targets) <= rate <= max(targets)
        if inside:
            within.append(excess)
        lines.append(f"| {threshold:g} | {rate:.2f} | {'yes' if inside else 'no'} | {excess:.2f} |")
    mean = float(np.mean(within)) if within else None
    lines += ["", (f"mean over the {len(within)} thresholds within the targets: {mean:.2f} "
                   f"(params: eval.between_split_dispersion = {params.eval.between_split_dispersion:g})"
                   if mean is not None else "no threshold's pooled rate lies within the targets")]
    return "\n".join(lines), mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1001)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="the draws' seeds, instead of --draws seeds from --first-seed (e.g. 1001 1002 2001)")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the draws (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    parser.add_argument("--json", type=Path, default=None, help="also write every draw's scores here")
    parser.add_argument("--operating-points", type=Path, action="append", default=None,
                        help="points file(s) to score on the same draws, e.g. the points before and after "
                             "a change (default: <workdir>/models/operating_points.json)")
    parser.add_argument("--eval-patients", type=int, default=None,
                        help="patients per draw instead of synth.patients.eval (smaller, quicker draws)")
    parser.add_argument("--background-recordings", type=int, default=None,
                        help="long seizure-free recordings per draw instead of synth.background_recordings.eval")
    parser.add_argument("--cross", action="store_true",
                        help="also let every split (dev, eval and each draw) certify points for every other")
    parser.add_argument("--tracks", type=Path, default=None,
                        help="keep each draw's probability tracks here and reuse them on the next run "
                             "(the draw's parameters must be the same)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = args.workdir.resolve()
    params = load_params(workdir)
    files = args.operating_points or [workdir / layout.OPERATING_POINTS]
    frozen = {path: read_operating_points(path) for path in files}
    root = Path(tempfile.mkdtemp(prefix="szflow_eval_draws_", dir=args.scratch))
    draws: dict[Path, dict[int, dict]] = {path: {} for path in files}
    all_tracks: dict[int, list] = {}
    try:
        seeds = args.seeds or [args.first_seed + i for i in range(args.draws)]
        for seed in seeds:
            tracks, base_tracks, step = stored_draw_tracks(workdir, params, seed, root / f"draw_{seed}",
                                                           args.eval_patients, args.background_recordings,
                                                           args.tracks)
            all_tracks[seed] = tracks
            for path, points in frozen.items():
                if int(points.get("checkpoint_step", -1)) != step:
                    sys.exit(f"{path} was tuned for another checkpoint step than {layout.BEST_CHECKPOINT} ({step})")
                draws[path][seed] = scores_at(tracks, base_tracks, points)
            print(f"draw {seed} done", file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(root / f"draw_{seed}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps({str(p): {str(k): v for k, v in d.items()} for p, d in draws.items()},
                                        indent=1))
    for path, points in frozen.items():
        print(f"\n## {path}\n")
        print(report(draws[path], points, dev_intervals(workdir, points)))
    if args.cross:
        splits = {split: read_tracks(workdir / "predictions" / split / "tracks.npz") for split in ("dev", "eval")}
        splits.update({f"draw {seed}": tracks for seed, tracks in all_tracks.items()})
        for path, points in frozen.items():
            print(f"\n## Between-split dispersion at the settings of {path} ({len(splits)} splits)\n")
            print(between_split_dispersion(splits, points))
        print(f"\n## Between-split dispersion over the threshold grid ({len(splits)} splits)\n")
        print(between_split_dispersion_over_grid(splits, params)[0])
        print("\n## Every split certifying for every other\n")
        print(cross_splits(params, splits))
        print("\n## The same with the first rule (upper end of the rate's Poisson interval)\n")
        print(cross_splits(params, splits, first_rule=True))


if __name__ == "__main__":
    main()
