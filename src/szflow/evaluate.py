"""Dev and eval as a library: inference over a split, operating points, predictions and reports.

On dev the post-processing is tuned for each target false-alarm rate; on eval those frozen settings
are only applied. Both run the network and the classical baseline through the same post-processing
and scoring, so every report shows what the network adds. The stage drivers
(`szflow.stages.dev`, `szflow.stages.eval`) choose the paths; everything here takes them as arguments.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from szflow.baseline import baseline_tracks, load_baseline
from szflow.cache import SplitStore
from szflow.config import Params
from szflow.data.annotations import write_csv_bi, write_events_tsv
from szflow.errors import SzflowError
from szflow.inference import predict_tracks, resolve_device
from szflow.io_utils import atomic_path
from szflow.model.checkpoint import load_detector
from szflow.postprocess import SETTINGS_KEYS, events_of_track, events_to_annotation
from szflow.scoring import ProbabilityTrack, RecordingEvents, auroc, score_corpus, tune_operating_points
from szflow.scoring.events import fa_per_24h
from szflow.scoring.intervals import fa_prediction_interval
from szflow.scoring.sweep import target_key

log = logging.getLogger("szflow.evaluate")

def split_tracks(params: Params, cache_dir: Path, split: str, checkpoint_path: Path, baseline_path: Path):
    """Probability tracks of the network (the checkpoint) and of the baseline over every recording of
    `<cache_dir>/<split>`, and the loaded checkpoint."""
    store = SplitStore.open(cache_dir, split)
    recording_ids = list(store.index["recording_id"])
    if not recording_ids:
        raise SzflowError(f"split '{split}' has no recordings in {cache_dir / split}")
    device = resolve_device(params.hardware.device)
    model, checkpoint = load_detector(
        checkpoint_path, expected_config=params.model,
        mamba_impl=params.hardware.mamba_impl, device=device,
    )
    with torch.inference_mode():
        tracks = predict_tracks(
            model, store, recording_ids,
            window_s=params.sampler.window_s, overlap_s=params.sampler.inference_overlap_s,
            batch_size=params.hardware.inference_batch_size, device=device,
            precision=params.hardware.precision, frame_rate_hz=params.model.frame_rate_hz,
        )
    baseline = load_baseline(baseline_path)
    base_tracks = baseline_tracks(store, recording_ids, baseline, params.model.frame_rate_hz)
    return tracks, base_tracks, checkpoint


def _events_for(tracks, settings: dict) -> list:
    return [
        RecordingEvents(recording_id=track.recording_id, duration_s=track.duration_s,
                        reference=list(track.reference), hypothesis=events_of_track(track, settings))
        for track in tracks
    ]


def score_at_operating_points(tracks, operating_points: dict[str, dict]) -> dict:
    """Corpus scores (OVLP, TAES, SzCORE) of `tracks` at each frozen operating point, plus AUROC."""
    result: dict = {"auroc": float(auroc(tracks)), "operating_points": {}}
    for key, point in operating_points.items():
        scores = score_corpus(_events_for(tracks, point))
        scores["settings"] = {name: point[name] for name in SETTINGS_KEYS}
        scores["certification"] = certification(key, point, scores["duration_s"], scores["ovlp"]["fp"])
        result["operating_points"][key] = scores
    return result


def certification(key: str, point: dict, duration_s: float | None = None, false_alarms: int | None = None) -> dict:
    """What dev promised for a frozen point: the target, whether dev certified it (the FA/24h
    predicted for a new split of dev's hours at or below the target), dev's false alarms, their
    dispersion over patients, the between-split dispersion the prediction adds, the rate's interval
    and that prediction, the hours dev scored and the hours certifying the target takes. Given the
    hours and false alarms of the split now scored, also what dev predicts for a split of those
    hours (`fa_per_24h_predicted`) and whether this split's FA/24h lies within it. A points file from before certification says certified: false."""
    out = {
        "target_fa_per_24h": float(key),
        "certified": bool(point.get("certified", False)),
        "dev_false_alarms": point.get("fp"),
        "dev_fa_dispersion": point.get("fa_dispersion"),
        "between_split_dispersion": point.get("between_split_dispersion", 1.0),
        "dev_fa_per_24h": point.get("fa_per_24h"),
        "dev_fa_per_24h_interval": point.get("fa_per_24h_interval"),
        "dev_fa_per_24h_predicted": point.get("fa_per_24h_predicted"),
        "dev_hours": point.get("hours_scored"),
        "hours_needed": point.get("hours_needed"),
    }
    if duration_s is not None and point.get("hours_scored") and point.get("fp") is not None:
        dispersion = (point.get("fa_dispersion") or 1.0) * point.get("between_split_dispersion", 1.0)
        predicted = fa_prediction_interval(point["fp"], float(point["hours_scored"]) * 3600.0, duration_s,
                                           dispersion)
        out["fa_per_24h_predicted"] = predicted
        if false_alarms is not None:
            rate = fa_per_24h(false_alarms, duration_s)
            out["fa_within_prediction"] = bool(predicted[0] <= rate <= predicted[1] * (1 + 1e-9))
    return out


def tune(params: Params, tracks) -> dict[str, dict]:
    """Operating points tuned on `tracks`, each certified only when the upper end of the FA/24h
    predicted for a new split of the same hours meets the target (`tune_operating_points(...,
    certify=True)`, with the params' between-split dispersion)."""
    points = tune_operating_points(tracks, params.eval.operating_points_fa_per_24h, certify=True,
                                   between_split_dispersion=params.eval.between_split_dispersion,
                                   **params.eval.tuning_grid())
    return {target_key(float(key)): value for key, value in points.items()}


def write_tracks(path: Path, tracks) -> None:
    """Probability tracks for plots and `szflow detect` checks: one .npz, metadata as JSON inside."""
    meta = [
        {"recording_id": t.recording_id, "duration_s": float(t.duration_s),
         "frame_rate_hz": float(t.frame_rate_hz), "reference": [list(map(float, r)) for r in t.reference],
         "frames": len(t.probabilities)}
        for t in tracks
    ]
    probabilities = (np.concatenate([t.probabilities for t in tracks]).astype(np.float32)
                     if tracks else np.zeros(0, np.float32))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, probabilities=probabilities, meta=np.array(json.dumps(meta)))


def read_tracks(path: Path) -> list:
    with np.load(path) as data:
        probabilities = data["probabilities"]
        meta = json.loads(str(data["meta"]))
    tracks, offset = [], 0
    for item in meta:
        frames = item["frames"]
        tracks.append(ProbabilityTrack(
            recording_id=item["recording_id"], probabilities=probabilities[offset:offset + frames],
            frame_rate_hz=item["frame_rate_hz"], duration_s=item["duration_s"],
            reference=[tuple(r) for r in item["reference"]],
        ))
        offset += frames
    return tracks


def write_predictions(out_dir: Path, tracks, operating_points: dict[str, dict]) -> None:
    """Per operating point: one TUSZ .csv_bi and one SzCORE _events.tsv per recording."""
    for key, point in operating_points.items():
        for recording in _events_for(tracks, point):
            annotation = events_to_annotation(recording.recording_id, recording.hypothesis,
                                              recording.duration_s)
            folder = out_dir / f"fa{key}"
            write_csv_bi(folder / "csv_bi" / f"{recording.recording_id}.csv_bi", annotation)
            write_events_tsv(folder / "tsv" / f"{recording.recording_id}_events.tsv", annotation)


def split_report(split: str, tracks, base_tracks, points: dict, base_points: dict, checkpoint) -> dict:
    """metrics/<split>.json: the network and the baseline scored at their operating points."""
    network = score_at_operating_points(tracks, points)
    baseline = score_at_operating_points(base_tracks, base_points)
    return {
        "split": split,
        "recordings": len(tracks),
        "duration_s": float(sum(t.duration_s for t in tracks)),
        "checkpoint_step": int(checkpoint.step),
        **network,
        "baseline": baseline,
    }


def _rounded(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def headline(report: dict) -> dict:
    """metrics/<split>.json: the few numbers to compare experiments by (15 in all: `dvc exp show`
    gives each a column; `szflow runs` fits them in one 120-column line), each key naming its averaging.
    `sens_*` and `fa_*` are NEDC OVLP. dev: whether it certified each operating point. eval: frame
    AUROC; per operating point OVLP sensitivity pooled over recordings and FA/24h; SzCORE event F1
    averaged over subjects and the baseline's OVLP sensitivity at the loosest point. The intervals, the pooled SzCORE F1 and
    every other score are in metrics/detail/<split>.json.

    The numbers sit under the split's name ({"eval": {...}}): dev and eval then have different key
    paths, and `dvc exp show` names a column by its key alone ('eval.fa10.sens_pooled') instead of
    prefixing the file's path to keys the two files share."""
    points = report["operating_points"]
    if report["split"] == "dev":
        return {"dev": {f"fa{key}_certified": scores["certification"]["certified"]
                        for key, scores in points.items()}}
    out: dict = {"auroc": _rounded(report["auroc"])}
    for key, scores in points.items():
        out[f"fa{key}"] = {"sens_pooled": _rounded(scores["ovlp"]["sensitivity"]),
                           "fa_24h": _rounded(scores["ovlp"]["fa_per_24h"], 2)}
    loosest = max(points, key=float)
    out[f"szcore_f1_subject_mean_fa{loosest}"] = _rounded(
        points[loosest]["szcore_event_subject_mean"]["f1"])
    base = report["baseline"]["operating_points"].get(loosest)
    if base is not None:
        out[f"baseline_sens_pooled_fa{loosest}"] = _rounded(base["ovlp"]["sensitivity"])
    return {report["split"]: out}
