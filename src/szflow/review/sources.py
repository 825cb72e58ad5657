"""Where review recordings come from: EDF files run through the detector (as `szflow detect` runs
them), or a pipeline split's probability tracks with the corpus their EDFs live in.

Both paths need the checkpoint (for EDFs to compute the probabilities; for a split as provenance)
and the frozen operating points tuned for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from szflow.config import Params
from szflow.data.discover import discover_corpus
from szflow.detect import InferenceSettings, find_edfs, predict_file, training_data_warning
from szflow.edf_store import recording_id
from szflow.errors import ConfigError, InputFileError
from szflow.evaluate import read_tracks
from szflow.model.checkpoint import Checkpoint, load_checkpoint, load_detector
from szflow.operating_points import (
    check_checkpoint_step,
    detector_point,
    read_operating_points,
    uncertified_warning,
)
from szflow.plots import timeline_tracks
from szflow.postprocess import events_of_track
from szflow.review.data import ReviewRecording, read_reference, review_recording
from szflow.scoring import ovlp_counts

log = logging.getLogger("szflow.review")


@dataclass
class ReviewInputs:
    recordings: list[ReviewRecording]
    points: dict[str, dict]  # false-alarm target -> the five post-processing settings
    provenance: dict
    failures: list[str] = field(default_factory=list)


def frozen_points(path: str | Path, checkpoint_step: int) -> dict[str, dict]:
    """Every detector operating point of the file, checked as detect checks the one it uses."""
    frozen = read_operating_points(path)
    check_checkpoint_step(path, frozen, checkpoint_step)
    points = {key: detector_point(path, frozen, key) for key in frozen["detector"]}
    return dict(sorted(points.items(), key=lambda item: -float(item[0])))


def provenance(checkpoint_path: str | Path, ckpt: Checkpoint, points_path: str | Path, points: dict[str, dict],
               *, own_recordings: bool) -> dict:
    """What the page says about the model: the checkpoint's step, params hash and model config, and
    the warnings `szflow detect` gives (`page_warnings`)."""
    metrics = {key: value for key, value in ckpt.metrics.items() if isinstance(value, (int, float, str))}
    return {"checkpoint": str(checkpoint_path), "step": ckpt.step, "epoch": ckpt.epoch,
            "params_hash": ckpt.params_hash, "model_config": ckpt.model_config.model_dump(mode="json"),
            "metrics": metrics, "operating_points": str(points_path),
            "warnings": page_warnings(checkpoint_path, ckpt, points_path, points, own_recordings=own_recordings)}


def page_warnings(checkpoint_path: str | Path, ckpt: Checkpoint, points_path: str | Path, points: dict[str, dict],
                  *, own_recordings: bool) -> list[str]:
    """The warnings the page shows above everything: each operating point dev did not certify and,
    for EDF files given by the user (not `own_recordings`, the split the pipeline scored), a model
    that has never seen real EEG: the same lines `szflow detect` prints."""
    warnings = [] if own_recordings else [training_data_warning(checkpoint_path, ckpt.training_data)]
    warnings += [uncertified_warning(points_path, key) for key in points]
    return [warning for warning in warnings if warning is not None]


def review_edfs(inputs: Sequence[str | Path], params: Params, *, checkpoint: str | Path,
                operating_points: str | Path, device: str | None = None, batch_size: int | None = None,
                on_failure: Callable[[str], None] | None = None) -> ReviewInputs:
    """Review recordings of EDF files or folders: probabilities computed by `predict_file` (detect's
    path), references from the annotation beside each EDF when there is one. A file that cannot be
    used is a failure line, and the others go on (as in detect)."""
    settings = InferenceSettings.from_params(params, device=device, batch_size=batch_size)
    model, ckpt = load_detector(checkpoint, expected_config=params.model, mamba_impl=params.hardware.mamba_impl,
                                device=settings.device)
    points = frozen_points(operating_points, ckpt.step)
    result = ReviewInputs([], points, provenance(checkpoint, ckpt, operating_points, points, own_recordings=False))
    for edf, _ in find_edfs(inputs):
        try:
            if edf.is_dir():
                raise InputFileError(edf, "no .edf files in this folder")
            if not edf.exists():
                raise InputFileError(edf, "file not found")
            track = predict_file(edf, model, params, settings=settings)
            result.recordings.append(review_recording(edf, track, params, points, read_reference(edf)))
        except InputFileError as exc:
            message = f"{exc.path}: {exc.reason}"
            result.failures.append(message)
            if on_failure is not None:
                on_failure(message)
    if not result.recordings:
        raise ConfigError("no recording could be reviewed" + (f": {result.failures[0]}" if result.failures else ""))
    return result


def split_edfs(corpus_root: str | Path, source: str) -> dict[str, Path]:
    """recording id -> EDF path of every recording of the corpus."""
    table = discover_corpus(corpus_root, source)
    return {recording_id(path): Path(path) for path in table["edf_path"]}


def review_split(predictions: str | Path, corpus_root: str | Path, params: Params, *, checkpoint: str | Path,
                 operating_points: str | Path, tracks_name: str,
                 choose: Callable[[list, dict[str, dict]], list] | None = None) -> ReviewInputs:
    """Review recordings of a pipeline split: the tracks the eval (or dev) stage wrote in
    `predictions/<tracks_name>`, the EDFs from the corpus, references from the tracks (what the
    stage scored). `choose(tracks, points)` picks the recordings (default: all)."""
    ckpt = load_checkpoint(checkpoint)
    points = frozen_points(operating_points, ckpt.step)
    tracks = read_tracks(Path(predictions) / tracks_name)
    if choose is not None:
        tracks = choose(tracks, points)
    edfs = split_edfs(corpus_root, params.data.source)
    result = ReviewInputs([], points, provenance(checkpoint, ckpt, operating_points, points, own_recordings=True))
    for track in tracks:
        edf = edfs.get(track.recording_id)
        if edf is None:
            raise ConfigError(f"{corpus_root}: no EDF for recording {track.recording_id} of {predictions}")
        result.recordings.append(review_recording(edf, track, params, points, track.reference))
    return result


def errors_first(count: int, cap: int, max_hours: float) -> Callable[[list, dict[str, dict]], list]:
    """A `choose` for `review_split`: the `count` timeline recordings of the plots stage
    (`szflow.plots.timeline_tracks`), then every recording with a miss or a false alarm at some
    operating point (most errors first), at most `cap` recordings and `max_hours` of EEG in all
    (about 12 MB of page per hour), in that order of preference."""

    def choose(tracks: list, points: dict[str, dict]) -> list:
        chosen = timeline_tracks(tracks, count)
        taken = {t.recording_id for t in chosen}
        errors = []
        for track in tracks:
            if track.recording_id in taken:
                continue
            worst = 0
            for point in points.values():
                events = events_of_track(track, point)
                _, misses, false_alarms = ovlp_counts(track.reference, events)
                worst = max(worst, misses + false_alarms)
            if worst:
                errors.append((-worst, track.recording_id, track))
        chosen += [track for _, _, track in sorted(errors, key=lambda item: item[:2])]
        kept, hours = [], 0.0
        for track in chosen:
            if len(kept) == cap:
                break
            if kept and hours + track.duration_s / 3600 > max_hours:
                continue
            kept.append(track)
            hours += track.duration_s / 3600
        return kept

    return choose
