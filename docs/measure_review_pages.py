"""Page size and load time of `szflow review` pages of a 1 h and a 24 h recording (docs/review.md).

Usage: PYTHONPATH=src python docs/measure_review_pages.py [--hours 1 24] [--cache /tmp/szflow_review_pages]

Not a benchmark of benchmarks/ (there is no baseline to divide by): it measures the page against
its targets. The EDFs (reused from --cache): the 19 electrodes with TUSZ labels plus EKG at 250 Hz,
1 s records, a 1/f-like background with an alpha rhythm, streamed to disk 10 minutes at a time with
`szflow.synth.writer.write_edf_records` (a 24 h file is 0.8 GB). The detector is the tests' tiny
model with random weights (page size and load time do not depend on the weights or the model's
size). Its probability track comes from `szflow.detect.predict_file`, as `szflow review` computes
it; four operating points with thresholds at high quantiles of that track, so that each has a few
events (full-rate trace stretches are kept around events). The page is then built by
`szflow.review.review_recording` and `write_review` (what `szflow review` does after inference).

Load time: headless Chromium (the system's /usr/bin/chromium, driven by Playwright) opens the
page from its file: wall time from navigation until the page says it is ready (the list drawn, the
first recording's traces decoded and drawn). Also timed: zooming out to the whole recording (the
min/max pyramid is built then) and in to 10 s. Targets: <= 15 MB and <= 3 s for 1 h, <= 120 MB
and <= 10 s for 24 h. Prints the CPU model and flags first and one JSON line per page.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from playwright.sync_api import sync_playwright
from scipy.signal import lfilter

from szflow.config import ELECTRODES, load_params
from szflow.detect import InferenceSettings, predict_file
from szflow.model import Detector
from szflow.postprocess import smooth_probabilities
from szflow.review import ReviewInputs, review_recording, write_review
from szflow.synth.writer import EdfSignal, to_digital, write_edf_records

REPO_ROOT = Path(__file__).resolve().parents[1]
RATE = 250
BLOCK_S = 600

TINY_MODEL = {"encoder_channels": [4, 8], "n_layers": 1, "d_model": 16, "d_state": 4, "chunk_size": 16,
              "expand": 2, "dropout": 0.0}
TARGETS = {1.0: (15.0, 3.0), 24.0: (120.0, 10.0)}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def machine() -> str:
    """The CPU model and its flags, as lscpu names them."""
    info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True,
                                                             check=True).stdout.splitlines() if ":" in line)
    return f"{info.get('Model name', '?').strip()}, {info.get('CPU(s)', '?').strip()} CPUs; flags: " + \
        info.get("Flags", "").strip()


def long_edf(folder: Path, hours: float) -> Path:
    """A `hours`-long EDF written block by block (reused when it exists)."""
    path = folder / f"review_{hours:g}h.edf"
    if path.exists():
        return path
    signals = [EdfSignal(f"EEG {name}-REF", RATE, -2000.0, 2000.0) for name in ELECTRODES]
    signals.append(EdfSignal("EKG1", RATE, -2000.0, 2000.0))
    rng = np.random.default_rng(0)
    state = np.zeros((len(signals), 1))

    def blocks():
        nonlocal state
        for k in range(round(hours * 3600 / BLOCK_S)):
            n = BLOCK_S * RATE
            background, state = lfilter([0.08], [1.0, -0.92], rng.standard_normal((len(signals), n)), axis=1,
                                        zi=state)
            t = (k * n + np.arange(n)) / RATE
            physical = 120.0 * background + 15.0 * np.sin(2 * np.pi * 10.0 * t)
            yield [to_digital(row, signal) for row, signal in zip(physical, signals, strict=True)]

    write_edf_records(path, signals, blocks())
    return path


def tiny_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["model"].update(TINY_MODEL)
    (folder / "params").mkdir(exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / "params" / "local.yaml").write_text((REPO_ROOT / "params" / "local.yaml").read_text())
    return folder


def operating_points(probabilities: np.ndarray, rate: float) -> dict[str, dict]:
    points = {}
    for key, quantile in (("10", 0.995), ("5", 0.998), ("2.5", 0.999), ("1", 0.9995)):
        smoothed = smooth_probabilities(probabilities, rate, 2.0)
        points[key] = {"smoothing_s": 2.0, "threshold": float(np.quantile(smoothed, quantile)),
                       "hysteresis_low": None, "min_duration_s": 0.0, "merge_gap_s": 10.0}
    return points


def load_page(browser, path: Path) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    started = time.perf_counter()
    page.goto(path.resolve().as_uri(), timeout=120_000)
    page.wait_for_function("window.szReview && window.szReview.ready", timeout=120_000)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    page.evaluate("szReview.setView(0, szReview.state.rec.meta.duration)")
    whole_s = time.perf_counter() - started
    whole = page.evaluate("szReview.state.decimation")
    started = time.perf_counter()
    page.evaluate("szReview.setView(600, 610)")
    near_s = time.perf_counter() - started
    near = page.evaluate("szReview.state.decimation")
    page.close()
    return {"load_s": round(load_s, 2), "zoom_out_whole_s": round(whole_s, 2), "zoom_in_10s_s": round(near_s, 3),
            "whole_view": whole, "ten_second_view": near, "console_errors": errors,
            "requests_beyond_the_page": len(requests) - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 24.0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/szflow_review_pages"))
    args = parser.parse_args()
    print("#", machine(), flush=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    project = tiny_project(args.cache / "review_project")
    params = load_params(project)
    torch.manual_seed(0)
    model = Detector(params.model, mamba_impl="torch").eval()
    settings = InferenceSettings.from_params(params, device="cpu")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for hours in args.hours:
            edf = long_edf(args.cache, hours)
            started = time.perf_counter()
            track = predict_file(edf, model, params, settings=settings)
            inference_s = time.perf_counter() - started
            points = operating_points(track.probabilities, track.frame_rate_hz)
            started = time.perf_counter()
            recording = review_recording(edf, track, params, points, reference=None)
            page = write_review(args.cache / f"review_{hours:g}h.html",
                                ReviewInputs([recording], points, {"checkpoint": "(random tiny model)", "step": 0,
                                                                   "epoch": 0, "params_hash": "", "model_config": {},
                                                                   "metrics": {}, "operating_points": "(quantiles)"}))
            build_s = time.perf_counter() - started
            size_mb = page.stat().st_size / 1e6
            loaded = load_page(browser, page)
            target_mb, target_s = TARGETS.get(hours, (None, None))
            result = {"hours": hours, "page_mb": round(size_mb, 1), **loaded,
                      "whole_rate_hz": recording.segments[0].rate_hz,
                      "full_rate_stretches": len(recording.segments) - 1,
                      "full_rate_s": sum(s.n_samples / s.rate_hz for s in recording.segments[1:]),
                      "inference_s": round(inference_s, 1), "page_build_s": round(build_s, 1),
                      "target_mb": target_mb, "target_load_s": target_s,
                      "within_targets": None if target_mb is None else (size_mb <= target_mb
                                                                        and loaded["load_s"] <= target_s)}
            print(json.dumps(result), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
