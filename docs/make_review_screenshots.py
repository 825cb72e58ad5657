"""Screenshots of the `szflow review` page for docs/review.md (docs/img/review_*.png).

Usage: PYTHONPATH=src python docs/make_review_screenshots.py [--work /tmp/szflow_review_shots]

Builds a small project in --work: a synthetic eval split (2 patients, 2 recordings each, 4-6
minutes), a tiny detector with RANDOM weights saved as models/best.pt, and operating points at high
quantiles of its own smoothed probabilities (so that it fires: some events hit a seizure, most are
false alarms, and at the strictest point seizures are missed). Then runs `szflow review` on the
EDFs and photographs the page in headless Chromium (/usr/bin/chromium through Playwright): the
recording list, a hit, a false alarm, a miss and the bipolar (double banana) view. The detector is
untrained: the pictures show the page, not a result.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from szflow.cli import app
from szflow.config import load_params
from szflow.detect import InferenceSettings, predict_file
from szflow.model import Detector, save_checkpoint
from szflow.postprocess import smooth_probabilities
from szflow.synth import generate_corpus

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"
TINY_MODEL = {"encoder_channels": [4, 8], "n_layers": 1, "d_model": 16, "d_state": 4, "chunk_size": 16,
              "expand": 2, "dropout": 0.0}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def build_project(root: Path) -> Path:
    """The project of the module docstring; returns the review page."""
    if root.exists():
        shutil.rmtree(root)
    (root / "params").mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {"source": "synthetic", "root": "corpus"}
    params["model"].update(TINY_MODEL)
    params["synth"].update({"seed": 11, "patients": {"train": 0, "dev": 0, "eval": 2}, "recordings_per_patient": 2,
                            "min_duration_s": 240, "max_duration_s": 360, "broken_files": 0})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "params" / "local.yaml", root / "params" / "local.yaml")
    params = load_params(root)
    generate_corpus(root / "corpus", params.synth, progress=False)
    torch.manual_seed(0)
    model = Detector(params.model, mamba_impl="torch").eval()
    save_checkpoint(root / "models" / "best.pt", model=model, model_config=params.model, step=350,
                    params_hash=params.section_hash("model"))
    settings = InferenceSettings.from_params(params, device="cpu")
    edfs = sorted((root / "corpus" / "edf" / "eval").rglob("*.edf"))
    smoothed = np.concatenate([smooth_probabilities(t.probabilities, t.frame_rate_hz, 4.0) for t in
                               (predict_file(edf, model, params, settings=settings) for edf in edfs)])
    points = {key: {"smoothing_s": 4.0, "threshold": float(np.quantile(smoothed, q)), "hysteresis_low": None,
                    "min_duration_s": 2.0, "merge_gap_s": 10.0}
              for key, q in (("10", 0.93), ("5", 0.96), ("2.5", 0.98), ("1", 0.995))}
    (root / "models" / "operating_points.json").write_text(json.dumps(
        {"tuned_on": "dev", "checkpoint_step": 350, "detector": points, "baseline": points}))
    page = root / "review.html"
    result = CliRunner().invoke(app, ["review", str(root / "corpus" / "edf" / "eval"), "--out", str(page),
                                      "--params-dir", str(root), "--checkpoint", str(root / "models" / "best.pt")])
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return page


def find_event(page, kind: str, points: list[str]) -> bool:
    """Open the first recording and operating point that has an event of `kind` and centre on it."""
    for key in points:
        page.select_option("#point", key)
        for rid in page.evaluate("szReview.meta.recordings.map(r => r.id)"):
            page.click(f'#recording-list tr[data-recording="{rid}"]')
            events = [e for e in page.evaluate("szReview.events()") if e["kind"] == kind]
            if events:
                # The longest such event: the clearest picture of it.
                target = max(events, key=lambda e: e["span"][1] - e["span"][0])
                centre = (target["span"][0] + target["span"][1]) / 2
                page.evaluate(f"szReview.setView({centre - 15}, {centre + 15})")
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/szflow_review_shots"))
    args = parser.parse_args()
    page_path = build_project(args.work)
    IMG.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1150})
        page.goto(page_path.resolve().as_uri())
        page.wait_for_function("window.szReview && window.szReview.ready")
        # The synthetic seizures are 10-20 times the background's spread: a wider amplitude scale.
        page.select_option("#gain", "20")
        page.click('#recording-list th[data-column="false_alarms"]')
        page.screenshot(path=str(IMG / "review_list.png"))
        for kind, name, points in (("predicted hit", "review_hit.png", ["10", "5", "2.5", "1"]),
                                   ("false alarm", "review_false_alarm.png", ["2.5", "5", "10", "1"]),
                                   ("miss", "review_miss.png", ["1", "2.5", "5", "10"])):
            if not find_event(page, kind, points):
                raise SystemExit(f"no {kind} in the project: change the quantiles in build_project")
            page.screenshot(path=str(IMG / name))
        find_event(page, "predicted hit", ["10", "5"])
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("b")
        page.screenshot(path=str(IMG / "review_bipolar.png"))
        browser.close()
    print("wrote", ", ".join(sorted(p.name for p in IMG.glob("review_*.png"))))


if __name__ == "__main__":
    main()
