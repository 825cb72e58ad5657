"""The review page: one self-contained HTML file (uPlot, our script and styles inlined; no network).

Layout of the data in the page: a small JSON document (`#review-meta`: recordings, operating
points, provenance, counts) and one `<script type="application/octet-stream">` per binary array,
base64-encoded and decoded only when its recording is opened, so the list shows at once however
long the recordings are:
  - probabilities: float32 per frame (exact: the page recomputes events from them with the
    operating point's settings and must find `szflow.postprocess`'s events, bit for bit);
  - traces: int8 (channels x samples, channel-major) per stored segment.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path

import numpy as np

from szflow.io_utils import atomic_write_text
from szflow.postprocess import events_of_track
from szflow.review.data import ReviewRecording
from szflow.review.sources import ReviewInputs
from szflow.scoring import ovlp_counts

# The bipolar longitudinal ("double banana") montage: left temporal, left parasagittal, midline,
# right parasagittal, right temporal chains (ACNS guideline 3 with the 10-20 names the model reads).
DOUBLE_BANANA: tuple[tuple[str, str], ...] = (
    ("FP1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("FP1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("FZ", "CZ"), ("CZ", "PZ"),
    ("FP2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    ("FP2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
)


def _asset(name: str) -> str:
    return resources.files("szflow.review").joinpath(name).read_text(encoding="utf-8")


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def point_counts(recording: ReviewRecording, points: dict[str, dict]) -> dict[str, dict]:
    """Per operating point: predicted events and, with a reference, OVLP hits, misses, false alarms."""
    track = recording.track
    counts = {}
    for key, point in points.items():
        events = events_of_track(track, point)
        entry = {"events": len(events)}
        if recording.reference is not None:
            hits, misses, false_alarms = ovlp_counts(recording.reference, events)
            entry.update(hits=hits, misses=misses, false_alarms=false_alarms)
        counts[key] = entry
    return counts


def page_document(inputs: ReviewInputs, title: str) -> tuple[dict, dict[str, str]]:
    """(the JSON metadata, {element id: base64 payload}) of the page."""
    blobs: dict[str, str] = {}
    recordings = []
    for index, rec in enumerate(inputs.recordings):
        probs_id = f"p{index}"
        blobs[probs_id] = _b64(np.asarray(rec.track.probabilities, dtype="<f4"))
        segments = []
        for k, segment in enumerate(rec.segments):
            blob_id = f"t{index}_{k}"
            blobs[blob_id] = _b64(segment.data)
            segments.append({"rate": segment.rate_hz, "start": segment.start_s, "n": segment.n_samples,
                             "blob": blob_id})
        recordings.append({
            "id": rec.recording_id, "edf": rec.edf_path, "duration": rec.duration_s,
            "frameRate": float(rec.track.frame_rate_hz), "frames": len(rec.track.probabilities),
            "probs": probs_id, "reference": rec.reference, "channels": rec.channels, "step": rec.step,
            "segments": segments, "montage": rec.montage, "counts": point_counts(rec, inputs.points),
        })
    meta = {
        "title": title, "points": inputs.points, "defaultPoint": next(iter(inputs.points)),
        "provenance": inputs.provenance, "bipolar": [list(pair) for pair in DOUBLE_BANANA],
        "recordings": recordings,
    }
    return meta, blobs


def render_page(inputs: ReviewInputs, title: str = "szflow review") -> str:
    meta, blobs = page_document(inputs, title)
    # "</" cannot appear inside a <script> element; JSON may escape "/" as "\/" to avoid it.
    meta_json = json.dumps(meta, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    data = "\n".join(f'<script type="application/octet-stream" id="{key}">{value}</script>'
                     for key, value in blobs.items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{_asset('vendor/uPlot.min.css')}\n</style>\n<style>\n{_asset('review.css')}\n</style>\n"
        "</head>\n<body>\n"
        f"<script type=\"application/json\" id=\"review-meta\">{meta_json}</script>\n{data}\n"
        f"<script>\n{_asset('vendor/uPlot.iife.min.js')}\n</script>\n"
        f"<script>\n{_asset('review.js')}\n</script>\n"
        "</body>\n</html>\n"
    )


def write_review(path: str | Path, inputs: ReviewInputs, title: str = "szflow review") -> Path:
    """Write the page atomically; returns its path."""
    path = Path(path)
    atomic_write_text(path, render_page(inputs, title))
    return path
