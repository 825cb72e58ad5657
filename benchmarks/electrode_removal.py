"""Electrodes taken off the cap: eval quality at the frozen operating points with 0, 2 and 4 removed.

    python benchmarks/electrode_removal.py [--workdir .] [--k 0 2 4] [--draws 3] [--seed 0]
        [--workers 2] [--torch-threads 1] [--device cpu] [--limit N] [--k0-from-eval] [--out FILE.json]
        [--tracks DIR]

Needs a finished pipeline in `--workdir` (its params.yaml, data/preprocess/report.csv, the eval
cache data/cache/eval, models/best.pt and the dev-frozen models/operating_points.json). For every
recording of the eval cache and every run (k electrodes, draw d), k electrodes are drawn at random
among the recording's present ones (seeded by --seed, k, d and the file name, so a run is the same
whatever the order or the number of workers; the same electrodes for every segment of an EDF+D
file), and removed honestly, at the raw level: the recording's EDF is read again
(`szflow.data.edf.read_eeg_segments`), the electrodes are taken off its resolved montage
(`szflow.data.electrodes.without`: every signal recording them goes unread, so on a bipolar file an
electrode reachable only through a removed one goes missing too), and the preprocess stage's own
chain runs over what is left (`szflow.signal.chain.preprocess_recording`: common average over the
remaining electrodes, filters, normalisation; float16 as in the cache), then the network with its
presence mask (`szflow.inference.predict_tracks` over a one-recording store, as `szflow detect`).
The tracks, with the cache's reference seizures, are scored as the eval stage scores them
(`szflow.evaluate.score_at_operating_points` at the frozen detector points).

k = 0 is deterministic (nothing drawn): one draw only. It goes through the same path and must give
the eval stage's scores (metrics/detail/eval.json, shown beside it when present) up to float32 round-off
of differently batched windows; `--k0-from-eval` takes the eval stage's own tracks instead (one run
less). Recordings whose removal leaves fewer than
`preprocess.min_electrodes` (which `szflow detect` would refuse) are still scored: the JSON counts them.

Cost: each run preprocesses and infers the whole eval split again: about 1.5 CPU-s per EEG hour
to preprocess and 3-9 to infer, so the default synthetic eval split (~42 h) x 7 runs (1 + 3 + 3)
is ~22-52 CPU-minutes: ~11-26 minutes on 2 workers of 1 torch thread (the default; one worker per
core is fastest, and more workers on a bigger machine, or --device cuda, shorten it). A job is one
EDF with all its runs (read once); jobs go longest first. Prints the table (k, draw, per point OVLP
sensitivity and FA/24h), the mean per k and its loss against k = 0, and the issue's target (2
electrodes: OVLP sensitivity at the 10 FA/24h point within 0.05 of k = 0 at no more false alarms);
`--out` writes the JSON; `--tracks DIR` keeps every run's tracks and reuses them on the next run
(only what is missing is computed), so new operating points are scored in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from common import worker_model

from szflow import layout
from szflow.cache import SplitStore
from szflow.cache.store import ArraySource, RecordingStore
from szflow.config import ELECTRODES, load_params
from szflow.data.edf import EegRecording, read_eeg_segments
from szflow.data.electrodes import without
from szflow.errors import SzflowError
from szflow.evaluate import read_tracks, score_at_operating_points, write_tracks
from szflow.inference import predict_tracks
from szflow.io_utils import atomic_write_json
from szflow.model.checkpoint import load_checkpoint
from szflow.operating_points import check_checkpoint_step, read_operating_points
from szflow.process_pool import run_in_processes
from szflow.signal.chain import preprocess_recording, quantise

SPLIT = "eval"
CPU_S_PER_EEG_HOUR = {"preprocess": 1.5, "inference": (3.0, 9.0)}
# The target: with this many electrodes removed, sensitivity at this point within this much.
TARGET_K, TARGET_POINT, TARGET_LOSS = 2, "10", 0.05


@dataclasses.dataclass(frozen=True)
class Job:
    """One EDF: its recordings in the eval cache (id -> onset in file time) and the runs to make."""

    edf_path: str
    recordings: dict[str, float]
    runs: tuple[tuple[int, int], ...]  # (k, draw)
    seed: int
    workdir: str
    checkpoint: str
    device: str | None
    torch_threads: int
    hours: float


def removed_electrodes(present: np.ndarray, k: int, draw: int, seed: int, name: str) -> list[str]:
    """k of the present electrodes, drawn from (seed, k, draw, the file's name): order-independent."""
    if k == 0:
        return []
    names = [e for e, p in zip(ELECTRODES, present, strict=True) if p]
    rng = np.random.default_rng([seed, k, draw, zlib.crc32(name.encode())])
    return sorted(rng.choice(names, size=min(k, len(names)), replace=False).tolist(), key=ELECTRODES.index)


def drop_electrodes(recording: EegRecording, names: list[str]) -> EegRecording:
    """The recording with `names` off its montage (`without`), holding only the signals still read."""
    montage = without(recording.montage, names)
    position = {source: i for i, source in enumerate(recording.montage.sources)}
    unread = [recording.montage.labels[s] for s in montage.sources if s not in position]
    if unread:
        raise SzflowError(f"removing {' '.join(names)} moved the reference frame to signals not read "
                          f"({', '.join(unread)})")
    rows = [position[s] for s in montage.sources]
    return dataclasses.replace(recording, signals=[recording.signals[i] for i in rows],
                               sample_rates=[recording.sample_rates[i] for i in rows],
                               labels=[recording.labels[i] for i in rows], montage=montage)


def predict_runs(job: Job) -> dict:
    """Every run of one EDF: {run: {"tracks": [...], "removed": [...], "n_present": n}}, failures apart."""
    params, model, settings = worker_model(job.workdir, job.checkpoint, job.device, job.torch_threads)
    device = settings.device
    cfg = params.preprocess
    rate = float(cfg.sample_rate_hz)
    result: dict = {"edf": job.edf_path, "runs": {}, "failures": []}
    try:
        segments = read_eeg_segments(job.edf_path, min_electrodes=cfg.min_electrodes)
    except Exception as exc:  # noqa: BLE001 - a batch job reports every failure and goes on
        result["failures"].append(f"{job.edf_path}: {type(exc).__name__}: {exc}")
        return result
    by_onset = {round(seg.offset_s, 6): seg for seg in segments}
    present = segments[0].montage.present
    for k, draw in job.runs:
        names = removed_electrodes(present, k, draw, job.seed, Path(job.edf_path).name)
        run = {"removed": names, "tracks": [], "n_present": None}
        for rid, onset in job.recordings.items():
            try:
                recording = drop_electrodes(by_onset[round(onset, 6)], names)
                run["n_present"] = recording.montage.n_present
                block = quantise(preprocess_recording(recording, cfg))
                store = RecordingStore(rid, ArraySource(block), recording.duration_s, rate, recording.montage.present)
                run["tracks"].extend(predict_tracks(
                    model, store, [rid], window_s=params.sampler.window_s,
                    overlap_s=params.sampler.inference_overlap_s, batch_size=params.hardware.inference_batch_size,
                    device=device, precision=params.hardware.precision, frame_rate_hz=params.model.frame_rate_hz,
                    progress=False))
            except Exception as exc:  # noqa: BLE001 - reported per recording and run; the rest go on
                result["failures"].append(f"{rid} k={k} draw={draw}: {type(exc).__name__}: {exc}")
        result["runs"][f"{k}/{draw}"] = run
    return result


def eval_recordings(workdir: Path, limit: int | None) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """The eval cache's index and, per EDF, its recordings (id -> onset s) from the preprocess report."""
    store = SplitStore.open(workdir / layout.CACHE_DIR, SPLIT)
    index = store.index.set_index("recording_id", drop=False)
    report = pd.read_csv(workdir / layout.PREPROCESS_REPORT, keep_default_na=False)
    report = report[(report["split"] == SPLIT) & (report["status"] == "ok")].set_index("recording_id")
    absent = sorted(set(index.index) - set(report.index))
    if absent:
        raise SzflowError(f"{len(absent)} eval cache recordings are not in {layout.PREPROCESS_REPORT} "
                          f"(e.g. {absent[0]}): preprocess and cache are from different runs")
    files: dict[str, dict[str, float]] = {}
    for rid in index.index:
        edf = Path(str(report.at[rid, "edf_path"]))
        edf = edf if edf.is_absolute() else workdir / edf
        files.setdefault(str(edf), {})[str(rid)] = float(report.at[rid, "offset_s"] or 0.0)
    if limit is not None:
        files = dict(list(files.items())[:limit])
        kept = {rid for recordings in files.values() for rid in recordings}
        index = index[index["recording_id"].isin(kept)]
    return index, files


def eval_stage_tracks(workdir: Path, index: pd.DataFrame, step: int) -> list:
    """The eval stage's own tracks (predictions/eval) of the recordings in `index`: k = 0 as eval made it."""
    evaluated = json.loads((workdir / layout.split_detail(SPLIT)).read_text())
    if int(evaluated.get("checkpoint_step", -1)) != int(step):
        raise SzflowError(f"{layout.split_detail(SPLIT)} is from checkpoint step {evaluated.get('checkpoint_step')}, "
                          f"the checkpoint is step {step}: re-run the eval stage or drop --k0-from-eval")
    tracks = read_tracks(workdir / layout.predictions_dir(SPLIT) / layout.NETWORK_TRACKS)
    return [t for t in tracks if t.recording_id in index.index]


def score_runs(runs: dict[str, list], index: pd.DataFrame, points: dict) -> dict:
    """OVLP (and the rest of eval's scores) per run, with the cache's reference seizures."""
    scores = {}
    for run, tracks in runs.items():
        tracks = [dataclasses.replace(t, reference=[(float(a), float(b)) for a, b in
                                                    index.at[t.recording_id, "seizure_intervals"]])
                  for t in sorted(tracks, key=lambda t: t.recording_id)]
        scores[run] = score_at_operating_points(tracks, points)
    return scores


def summarise(scores: dict, points: list[str]) -> dict:
    """Per k: mean OVLP sensitivity and FA/24h over its draws, and the change against k = 0."""
    by_k: dict[int, list[dict]] = {}
    for run, result in scores.items():
        by_k.setdefault(int(run.split("/")[0]), []).append(result)
    means = {}
    for k, results in sorted(by_k.items()):
        means[k] = {key: {"sensitivity": float(np.mean([r["operating_points"][key]["ovlp"]["sensitivity"]
                                                         for r in results])),
                          "fa_per_24h": float(np.mean([r["operating_points"][key]["ovlp"]["fa_per_24h"]
                                                        for r in results]))}
                    for key in points}
        means[k]["draws"] = len(results)
    if 0 in means:
        for mean in means.values():
            mean["loss_vs_k0"] = {key: {
                "sensitivity": means[0][key]["sensitivity"] - mean[key]["sensitivity"],
                "fa_per_24h_added": mean[key]["fa_per_24h"] - means[0][key]["fa_per_24h"]} for key in points}
    target = None
    if 0 in means and TARGET_K in means and TARGET_POINT in points:
        loss = means[TARGET_K]["loss_vs_k0"][TARGET_POINT]
        target = {"k": TARGET_K, "point": TARGET_POINT, "max_sensitivity_loss": TARGET_LOSS,
                  "sensitivity_loss": loss["sensitivity"], "fa_per_24h_added": loss["fa_per_24h_added"],
                  "met": loss["sensitivity"] <= TARGET_LOSS and loss["fa_per_24h_added"] <= 0.0}
    return {"per_k": {str(k): v for k, v in means.items()}, "target": target}


def markdown(scores: dict, summary: dict, removed: dict, points: list[str]) -> str:
    head = ["k", "draw"] + [f"FA{key}: sens / FA/24h (mean: loss vs k=0 / FA/24h added)" for key in points] + ["removed (first files)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in sorted(scores, key=lambda r: tuple(map(int, r.split("/")))):
        k, draw = run.split("/")
        cells = [k, draw]
        for key in points:
            ovlp = scores[run]["operating_points"][key]["ovlp"]
            cells.append(f"{ovlp['sensitivity']:.3f} / {ovlp['fa_per_24h']:.2f}")
        first = [removed[run][name] for name in sorted(removed[run])[:3]]
        cells.append("; ".join(" ".join(names) for names in first) if k != "0" else "-")
        lines.append("| " + " | ".join(cells) + " |")
    for k, mean in summary["per_k"].items():
        cells = [k, f"mean of {mean['draws']}"]
        for key in points:
            cell = f"{mean[key]['sensitivity']:.3f} / {mean[key]['fa_per_24h']:.2f}"
            if "loss_vs_k0" in mean and k != "0":
                loss = mean["loss_vs_k0"][key]
                cell += f" (loss {loss['sensitivity']:+.3f} / {loss['fa_per_24h_added']:+.2f})"
            cells.append(cell)
        cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    target = summary["target"]
    if target is not None:
        lines.append("")
        lines.append(f"Target (k={target['k']}, FA{target['point']} point): sensitivity loss "
                     f"{target['sensitivity_loss']:+.3f} (at most {target['max_sensitivity_loss']}), FA/24h "
                     f"{target['fa_per_24h_added']:+.2f} (no more): {'met' if target['met'] else 'NOT met'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="a project with a finished pipeline (default: .)")
    parser.add_argument("--checkpoint", default=None, help=f"default: <workdir>/{layout.BEST_CHECKPOINT}")
    parser.add_argument("--operating-points", default=None, help=f"default: <workdir>/{layout.OPERATING_POINTS}")
    parser.add_argument("--k", type=int, nargs="+", default=[0, 2, 4], help="electrodes removed (default 0 2 4)")
    parser.add_argument("--draws", type=int, default=3, help="random draws per k > 0 (default 3; k = 0 has one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k0-from-eval", action="store_true",
                        help="take k = 0 from the eval stage's tracks (predictions/eval) instead of recomputing "
                             "it through this path: one run less")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: this process)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--device", default=None, help="cpu | cuda | auto (default: the profile's)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N EDF files (smoke runs)")
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--tracks", default=None,
                        help="keep each run's probability tracks in this folder and reuse them next time "
                             "(scoring other operating points then takes seconds)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    workdir = Path(args.workdir).resolve()
    params = load_params(workdir)
    checkpoint = Path(args.checkpoint) if args.checkpoint else workdir / layout.BEST_CHECKPOINT
    points_path = Path(args.operating_points) if args.operating_points else workdir / layout.OPERATING_POINTS
    frozen = read_operating_points(points_path)
    step = load_checkpoint(checkpoint, expected_config=params.model).step
    check_checkpoint_step(points_path, frozen, step)
    points = dict(frozen["detector"])
    index, files = eval_recordings(workdir, args.limit)
    runs = tuple((k, draw) for k in sorted(set(args.k)) for draw in range(1 if k == 0 else args.draws))
    store = Path(args.tracks) if args.tracks else None

    def stored(run: tuple[int, int]) -> Path | None:
        return None if store is None else store / f"k{run[0]}_draw{run[1]}.npz"

    kept = {run for run in runs if stored(run) is not None and stored(run).is_file()}
    computed = tuple(run for run in runs if not (args.k0_from_eval and run[0] == 0) and run not in kept)
    hours = float(index["duration_s"].sum()) / 3600
    workers = max(1, args.workers)
    low, high = (hours * len(computed) * (CPU_S_PER_EEG_HOUR["preprocess"] + x) / 60 / workers
                 for x in CPU_S_PER_EEG_HOUR["inference"])
    print(f"# {len(index)} recordings ({len(files)} EDF files), {hours:.1f} h of EEG x {len(computed)} runs "
          f"(k=0 once: deterministic{'; taken from the eval stage' if len(computed) < len(runs) else ''}); "
          f"estimated {low:.1f}-{high:.1f} min on {workers} worker(s)", flush=True)
    started = time.perf_counter()
    durations = index["duration_s"].to_dict()
    jobs = sorted((Job(edf, recordings, computed, args.seed, str(workdir), str(checkpoint), args.device,
                       args.torch_threads, sum(durations[r] for r in recordings) / 3600)
                   for edf, recordings in files.items() if computed), key=lambda j: -j.hours)
    tracks: dict[str, list] = {f"{k}/{d}": [] for k, d in runs}
    removed: dict[str, dict[str, list]] = {f"{k}/{d}": {} for k, d in runs}  # run -> EDF name -> electrodes
    n_present: dict[str, list] = {f"{k}/{d}": [] for k, d in runs}
    failures: list[str] = []
    done_hours = [0.0]

    def done(result: dict) -> None:
        for run, value in result["runs"].items():
            tracks[run].extend(value["tracks"])
            removed[run][Path(result["edf"]).name] = value["removed"]
            if value["n_present"] is not None:
                n_present[run].append(value["n_present"])
        failures.extend(result["failures"])
        done_hours[0] += sum(durations[r] for r in files[result["edf"]]) / 3600
        elapsed = time.perf_counter() - started
        print(f"# {done_hours[0]:.1f}/{hours:.1f} h, {elapsed:.0f} s, ~{elapsed / done_hours[0] * (hours - done_hours[0]):.0f} s left"
              + (f"; failures: {result['failures']}" if result["failures"] else ""), flush=True)

    def died(job: Job, reason: str) -> None:
        done({"edf": job.edf_path, "runs": {}, "failures": [f"{job.edf_path}: {reason}"]})

    if args.workers <= 0:
        for job in jobs:
            done(predict_runs(job))
    else:
        run_in_processes(predict_runs, jobs, args.workers, done, died, what="electrode removal")
    for run in computed:
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
            write_tracks(stored(run), tracks[f"{run[0]}/{run[1]}"])
            stored(run).with_suffix(".json").write_text(json.dumps({
                "removed": removed[f"{run[0]}/{run[1]}"],
                "n_present": [int(n) for n in n_present[f"{run[0]}/{run[1]}"]]}))
    for run in kept:
        key = f"{run[0]}/{run[1]}"
        tracks[key] = read_tracks(stored(run))
        extra = json.loads(stored(run).with_suffix(".json").read_text())
        removed[key], n_present[key] = extra["removed"], extra["n_present"]
    if args.k0_from_eval and (0, 0) not in kept:
        tracks["0/0"] = eval_stage_tracks(workdir, index, step)
        removed["0/0"] = {Path(edf).name: [] for edf in files}
    scores = score_runs(tracks, index, points)
    summary = summarise(scores, list(points))
    eval_metrics = workdir / layout.split_detail(SPLIT)
    reference = None
    if eval_metrics.exists() and args.limit is None:
        evaluated = json.loads(eval_metrics.read_text())
        reference = {key: {name: evaluated["operating_points"][key]["ovlp"][name]
                           for name in ("sensitivity", "fa_per_24h")}
                     for key in points if key in evaluated.get("operating_points", {})}
    min_electrodes = params.preprocess.min_electrodes
    report = {
        "workdir": str(workdir), "checkpoint": str(checkpoint), "checkpoint_step": step, "operating_points": points,
        "recordings": len(index), "eeg_hours": hours, "seed": args.seed, "seconds": time.perf_counter() - started,
        "workers": args.workers, "torch_threads": args.torch_threads,
        "runs": {run: {"ovlp": {key: scores[run]["operating_points"][key]["ovlp"] for key in points},
                       "auroc": scores[run]["auroc"], "recordings_scored": len(tracks[run]),
                       "files_below_min_electrodes": sum(n < min_electrodes for n in n_present[run]),
                       "removed_per_file": dict(sorted(removed[run].items()))}
                 for run in scores},
        **summary, "eval_stage_ovlp": reference, "failures": failures,
    }
    print(markdown(scores, summary, removed, list(points)))
    if reference:
        print("eval stage (metrics/detail/eval.json): " + ", ".join(
            f"FA{key} {v['sensitivity']:.3f} / {v['fa_per_24h']:.2f}" for key, v in reference.items()))
    below = {run: value["files_below_min_electrodes"] for run, value in report["runs"].items()
             if value["files_below_min_electrodes"]}
    if below:
        print(f"files left with fewer than preprocess.min_electrodes {min_electrodes} (scored all the same): {below}")
    if failures:
        print(f"{len(failures)} failures (those recordings are missing from their runs' scores): {failures[:5]}")
    print(f"# {time.perf_counter() - started:.0f} s")
    if args.out:
        atomic_write_json(Path(args.out), report)
    return report


if __name__ == "__main__":
    try:
        main()
    except SzflowError as exc:
        sys.exit(f"error: {exc}")
