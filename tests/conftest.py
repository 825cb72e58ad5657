"""Shared test settings (offline, deterministic, quiet) and fixtures that build test data through
the library: a toy training store made by the real cache builder, a tiny project's params files."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from szflow.baseline import fit_baseline, save_baseline
from szflow.cache import SplitStore, build_split
from szflow.cache.layout import N_CHANNELS
from szflow.config import ELECTRODES, load_params
from szflow.data.edf import read_edf_header
from szflow.inference import predict_tracks
from szflow.model import Detector, save_checkpoint
from szflow.postprocess import smooth_probabilities
from szflow.signal.jobs import REPORT_COLUMNS, write_recording, write_run_summary
from szflow.stages.cache import run as run_cache_stage
from szflow.stages.eval import run as run_eval_stage
from szflow.stages.preprocess import run as run_preprocess_stage
from szflow.synth import generate_corpus
from szflow.synth.writer import EdfSignal, write_edf_signals

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.pop("MODAL_TOKEN_ID", None)
os.environ.pop("MODAL_TOKEN_SECRET", None)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The preprocess manifest records a params hash; toy signals were made by no preprocess params.
TOY_PARAMS_HASH = "toy"
# The model of the tiny projects that tests run stages or `szflow detect` in.
TINY_PROJECT_MODEL = {"encoder_channels": [4, 8], "n_layers": 1, "d_model": 16, "d_state": 4, "chunk_size": 16,
                      "expand": 2, "dropout": 0.0}


# ----------------------------------------------------------------------------- toy training store
def make_toy_recordings(n_patients: int = 6, recordings_per_patient: int = 2, duration_s: float = 40.0,
                        seizure_s: float = 10.0, seed: int = 0) -> list[dict]:
    """Recording specs: every other patient has a seizure in each of their recordings."""
    rng = np.random.default_rng(seed)
    specs = []
    for p in range(n_patients):
        for r in range(recordings_per_patient):
            intervals: list[list[float]] = []
            if p % 2 == 0:
                start = float(np.round(rng.uniform(2.0, duration_s - seizure_s - 2.0), 2))
                intervals = [[start, start + seizure_s]]
            specs.append({"recording_id": f"p{p:03d}_s001_t{r:03d}", "patient": f"p{p:03d}",
                          "duration_s": float(duration_s), "seizure_intervals": intervals})
    return specs


def toy_signal(n_samples: int, intervals: Sequence[Sequence[float]], rate_hz: float, rng: np.random.Generator,
               seizure_amplitude: float) -> np.ndarray:
    """White noise; a seizure adds a 5 Hz rhythm of a few times the background on every channel,
    so a tiny detector separates the classes within a few dozen steps."""
    x = rng.standard_normal((N_CHANNELS, n_samples)).astype(np.float32)
    t = np.arange(n_samples) / rate_hz
    for start, stop in intervals:
        inside = (t >= start) & (t < stop)
        x[:, inside] += seizure_amplitude * np.sin(2 * np.pi * 5.0 * t[inside])[None, :]
    return x


def build_toy_store(preprocess_dir: Path, cache_dir: str | Path, split: str, recordings: list[dict], seed: int,
                    seizure_amplitude: float) -> Path:
    """Write the recordings as the preprocess stage does, then build `<cache_dir>/<split>` from them."""
    cfg = load_params(REPO_ROOT).preprocess
    rate = float(cfg.sample_rate_hz)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for rec in recordings:
        n_samples = round(rec["duration_s"] * rate)
        intervals = [[float(a), float(b)] for a, b in rec["seizure_intervals"]]
        meta = {"recording_id": rec["recording_id"], "split": split, "patient": rec["patient"], "session": "s001",
                "montage": "01_tcp_ar", "duration_s": n_samples / rate, "n_samples": n_samples,
                "sample_rate_hz": rate, "seizure_intervals": intervals, "seizure_types": ["fnsz"] * len(intervals),
                "params_hash": TOY_PARAMS_HASH, "present": "1" * 19, "offset_s": 0.0}
        write_recording(preprocess_dir, meta, toy_signal(n_samples, intervals, rate, rng, seizure_amplitude))
        rows.append({**meta, "status": "ok", "reason": "", "n_seizures": len(intervals),
                     "seizure_s": float(sum(b - a for a, b in intervals))})
    write_run_summary(preprocess_dir, pd.DataFrame(rows, columns=REPORT_COLUMNS), cfg, TOY_PARAMS_HASH)
    return build_split(preprocess_dir, cache_dir, split, progress=False)


@pytest.fixture(scope="session")
def toy_recordings() -> Callable[..., list[dict]]:
    """`toy_recordings(n_patients=6, recordings_per_patient=2, duration_s=40, seizure_s=10, seed=0)`."""
    return make_toy_recordings


@pytest.fixture(scope="session")
def write_toy_store(tmp_path_factory) -> Callable[..., Path]:
    """`write_toy_store(cache_dir, split="train", recordings=None, seed=0, seizure_amplitude=3.0)`:
    a small learnable cache split (default `toy_recordings()`), built by `szflow.cache.build_split`
    from preprocessed recordings; returns `<cache_dir>/<split>`."""

    def write(cache_dir: str | Path, split: str = "train", recordings: list[dict] | None = None, seed: int = 0,
              seizure_amplitude: float = 3.0) -> Path:
        recordings = make_toy_recordings(seed=seed) if recordings is None else recordings
        return build_toy_store(tmp_path_factory.mktemp("toy_preprocess"), cache_dir, split, recordings, seed,
                               seizure_amplitude)

    return write


# ----------------------------------------------------------------------------- tiny project
def write_project_params(root: Path, extra: dict | None = None) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["data"] = {"source": "synthetic", "root": "corpus"}
    params["preprocess"].update({"num_workers": 0, "max_failed_fraction": 1.0})
    # Tiny projects: no hour-long background recordings (a test overrides synth keys it needs).
    params["synth"]["background_recordings"] = {"train": 0, "dev": 0, "eval": 0}
    params["model"].update(TINY_PROJECT_MODEL)
    for section, values in (extra or {}).items():
        params[section].update(values)
    (root / "params").mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO_ROOT / "params" / "local.yaml", root / "params" / "local.yaml")


@pytest.fixture(scope="session")
def write_params() -> Callable[..., None]:
    """`write_params(root, extra=None)`: this project's params.yaml and local profile in `root`, with
    a synthetic corpus in `root/corpus`, one in-process preprocess worker, a tiny model, and
    `extra` ({section: {key: value}}) applied on top."""
    return write_project_params


def _threshold_in_a_gap(values: np.ndarray, quantile: float, gap: float = 1e-4) -> float:
    """A threshold near `quantile` of `values` at the middle of a gap of at least `gap` between two
    consecutive values: no frame sits within float32 round-off of it, so the comparison of event
    files does not hang on the last bit of a probability (see detect.py's docstring)."""
    ordered = np.unique(values)
    start = int(quantile * (len(ordered) - 1))
    for offset in range(len(ordered)):
        for i in (start + offset, start - offset):
            if 0 <= i < len(ordered) - 1 and ordered[i + 1] - ordered[i] >= gap:
                return float((ordered[i] + ordered[i + 1]) / 2)
    raise AssertionError("no gap in the probabilities")


def choose_operating_points(tracks) -> dict:
    """Thresholds at quantiles of the random model's own (smoothed) probabilities, so every point has events."""
    points = {}
    for key, quantile, smoothing, hysteresis, min_dur, gap in (
            ("10", 0.6, 2.0, None, 0.0, 0.0), ("5", 0.8, 0.0, None, 1.0, 3.0),
            ("2.5", 0.9, 5.0, 0.5, 0.0, 10.0), ("1", 0.97, 2.0, None, 0.0, 0.0)):
        smoothed = np.concatenate([smooth_probabilities(t.probabilities, t.frame_rate_hz, smoothing) for t in tracks])
        threshold = _threshold_in_a_gap(smoothed, quantile)
        low = _threshold_in_a_gap(smoothed, hysteresis) if hysteresis is not None else None
        points[key] = {"smoothing_s": smoothing, "threshold": threshold, "hysteresis_low": low,
                       "min_duration_s": min_dur, "merge_gap_s": gap}
    return points


def build_eval_project(root: Path, synth_overrides: dict, params_hash: str = "") -> dict:
    """A tiny project in `root` whose eval split went through the real stages: synthetic corpus,
    preprocess, cache, an untrained detector saved as models/best.pt (step 7), the baseline,
    operating points chosen on the model's own probabilities, and the eval stage. Returns the points."""
    root.mkdir(parents=True)
    write_project_params(root)
    synth = load_params(root, overrides={f"synth.{key}": value for key, value in synth_overrides.items()}).synth
    generate_corpus(root / "corpus", synth, progress=False)
    params = load_params(root)
    run_preprocess_stage(params, root, progress=False)
    run_cache_stage(params, root, progress=False)
    torch.manual_seed(0)
    model = Detector(params.model, mamba_impl="torch").eval()
    save_checkpoint(root / "models" / "best.pt", model=model, model_config=params.model, step=7,
                    params_hash=params_hash)
    store = SplitStore.open(root / "data" / "cache", "eval")
    ids = list(store.index["recording_id"])
    tracks = predict_tracks(model, store, ids, window_s=params.sampler.window_s,
                            overlap_s=params.sampler.inference_overlap_s, batch_size=4, device="cpu",
                            frame_rate_hz=params.model.frame_rate_hz, progress=False)
    save_baseline(root / "models" / "baseline.json", fit_baseline(store, ids, params.model.frame_rate_hz))
    points = choose_operating_points(tracks)
    (root / "models" / "operating_points.json").write_text(json.dumps(
        {"tuned_on": "dev", "frame_rate_hz": params.model.frame_rate_hz, "checkpoint_step": 7,
         "detector": points, "baseline": points}))
    run_eval_stage(params, root)
    return points


@pytest.fixture(scope="session")
def eval_project() -> Callable[..., dict]:
    """`eval_project(root, synth_overrides, params_hash="")`: see `build_eval_project`."""
    return build_eval_project


def _write_edf_plus_d(path: Path, onsets: Sequence[float], rate: int = 64, seed: int = 3,
                      rows: Sequence[np.ndarray] | None = None) -> Path:
    """A small EDF+D file: 19 referential electrodes (`rows`, one per electrode, or white noise) in
    1 s data records whose onsets (s from the file start) are `onsets`, written to the EDF+ annotation
    signal's time-keeping TALs."""
    n = len(onsets) * rate
    if rows is None:
        rng = np.random.default_rng(seed)
        rows = [rng.normal(0, 50, n) for _ in ELECTRODES]
    labels = [f"EEG {name}-REF" for name in ELECTRODES] + ["EDF Annotations"]
    signals = [EdfSignal(label, rate, -1000.0, 1000.0) for label in labels]
    write_edf_signals(path, signals, [*rows, np.zeros(n)])
    header = read_edf_header(path)
    annotation_offset = 2 * sum(header.samples_per_record[:-1])
    with open(path, "r+b") as handle:
        handle.seek(192)
        handle.write(b"EDF+D".ljust(44))
        for k, onset in enumerate(onsets):
            tal = f"+{onset:g}\x14\x14\x00".encode().ljust(2 * rate, b"\x00")
            handle.seek(header.header_bytes + k * 2 * header.record_samples + annotation_offset)
            handle.write(tal)
    return path


@pytest.fixture(scope="session")
def write_edf_plus_d() -> Callable[..., Path]:
    """`write(path, onsets, rate=64, seed=3, rows=None)`: a tiny EDF+D file (see `_write_edf_plus_d`)."""
    return _write_edf_plus_d
