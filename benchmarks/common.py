"""What every benchmark shares: the repository root, the machine header, interleaved timing, the
result line, and the test EDFs (written with the synthetic corpus's EDF writer).

A ratio is only meaningful with the machine it was measured on: every benchmark starts by printing
the CPU model, the instruction-set flags that change the speed of this code (AVX2, AVX-512, AVX-512
BF16, AMX), the thread count and the library versions, and its JSON result carries the same
`machine` record.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from szflow.config import PreprocessConfig, load_params
from szflow.data.edf import ELECTRODES
from szflow.detect import InferenceSettings
from szflow.model.checkpoint import load_detector
from szflow.signal.jobs import REPORT_COLUMNS, write_recording, write_run_summary
from szflow.synth import make_plan, simulate
from szflow.synth.channels import SignalSpec
from szflow.synth.plan import RecordingSpec
from szflow.synth.variants import Variant
from szflow.synth.writer import write_edf

REPO_ROOT = Path(__file__).resolve().parents[1]
# The flags /proc/cpuinfo spells this way; bf16 autocast is native only with avx512_bf16 or amx_bf16.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def cpu_model_and_flags() -> tuple[str, dict[str, bool]]:
    """(CPU model name, {flag: present}) from /proc/cpuinfo; ("unknown", all False) elsewhere."""
    model, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, {flag: flag in flags for flag in SPEED_FLAGS}


def machine_info() -> dict:
    """The record that makes a ratio comparable: when, on what CPU, with which libraries."""
    model, flags = cpu_model_and_flags()
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "cpu_flags": flags,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def print_header(benchmark: str) -> dict:
    """Print the machine header (before any timing) and return it for the result line."""
    info = machine_info()
    flags = " ".join(f"{flag}={'yes' if present else 'no'}" for flag, present in info["cpu_flags"].items())
    print(f"# {benchmark} | {info['date_utc']} | {info['cpu']} | {info['logical_cpus']} logical CPUs | "
          f"load {info['load_average_1min']}", flush=True)
    print(f"# cpu flags: {flags}", flush=True)
    print(f"# torch {info['torch']} ({info['torch_threads']} threads), numpy {info['numpy']}, "
          f"python {info['python']}", flush=True)
    return info


def interleaved_times(methods: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Wall seconds of every call, `repeat` rounds, the methods taking turns within a round, so load
    from other processes on a shared machine hits every method alike. Warm up before calling this."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - start)
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """{name: {"best_s", "median_s"}}: best-of-N is the headline, the median shows the spread."""
    return {name: {"best_s": round(min(values), 5), "median_s": round(statistics.median(values), 5)}
            for name, values in times.items() if values}


def emit(result: dict) -> None:
    """The benchmark's one JSON result line (the last line it prints)."""
    print(json.dumps(result), flush=True)


def write_hour_edf(folder: Path, params, hours: float = 1.0) -> Path:
    """A TUSZ-like EDF of `hours` at 250 Hz with 23 signals (the 19 electrodes, A1, A2, EKG and
    PHOTIC), simulated and written like a recording of the synthetic corpus."""
    template = make_plan(params.synth).recordings[0]
    signals = [SignalSpec(f"EEG {e}-REF", "eeg", e, 250.0) for e in ELECTRODES[:16]]
    signals += [SignalSpec(f"EEG {e}-REF", "eeg", e, 250.0) for e in ("A1", "A2")]
    signals += [SignalSpec(f"EEG {e}-REF", "eeg", e, 250.0) for e in ELECTRODES[16:]]
    signals += [SignalSpec("EEG EKG1-REF", "ekg", "", 250.0), SignalSpec("PHOTIC-REF", "photic", "", 250.0, "mV")]
    spec = RecordingSpec(**{**template.__dict__, "montage": "01_tcp_ar", "rate": 250.0, "duration_s": hours * 3600,
                            "signals": tuple(signals), "seizures": (), "broken": None, "variant": Variant()})
    path = folder / f"{hours:g}h_250hz_23sig.edf"
    write_edf(path, spec, simulate(spec).signals)
    return path


def corpus_edf_files(root: Path) -> list[Path]:
    """The EDF files under `root`, less those its broken_files.json lists (deliberately unreadable)."""
    broken: set[str] = set()
    listing = root / "broken_files.json"
    if listing.exists():
        broken = {item["path"] for item in json.loads(listing.read_text())["files"]}
    return sorted(p for p in root.rglob("*.edf") if p.relative_to(root).as_posix() not in broken)


def write_noise_preprocess(out: Path, hours: float, cfg: PreprocessConfig, seed: int = 0, *, split: str = "train",
                           durations_s: Sequence[float] | None = None) -> list[str]:
    """A preprocess folder (what the preprocess stage writes) of `hours` of EEG in 30-minute `split`
    recordings of clipped normal noise (like normalised EEG), every other one with a 100 s seizure
    a third of the way in; returns the recording ids. `durations_s` gives the recordings' lengths
    instead (then `hours` is not used). Speed and size do not depend on the values."""
    rng = np.random.default_rng(seed)
    if durations_s is None:
        durations_s = [30 * 60.0] * max(1, round(hours * 2))
    rows = []
    for i, duration_s in enumerate(durations_s):
        rid = f"bench_{i:03d}"
        n = round(duration_s * cfg.sample_rate_hz)
        block = np.clip(rng.normal(0, 1, (19, n)), -10, 10).astype(np.float16)
        onset = round(n / cfg.sample_rate_hz / 3)
        seizures = [[float(onset), float(onset + 100)]] if i % 2 == 0 else []
        meta = {"recording_id": rid, "split": split, "patient": f"p{i // 2}", "session": "s001",
                "montage": "01_tcp_ar", "duration_s": n / cfg.sample_rate_hz, "n_samples": n, "seizure_intervals": seizures,
                "seizure_types": ["fnsz"] if seizures else [], "params_hash": "bench",
                "present": "1" * 19, "offset_s": 0.0}
        write_recording(out, meta, block)
        rows.append({**dict.fromkeys(REPORT_COLUMNS, ""), "recording_id": rid, "split": split, "status": "ok",
                     "resumed": False, "n_samples": n})
    write_run_summary(out, pd.DataFrame(rows, columns=REPORT_COLUMNS), cfg, "bench")
    return [row["recording_id"] for row in rows]


_WORKER_MODELS: dict[tuple, tuple] = {}


def worker_model(params_dir: str, checkpoint: str, device: str | None, torch_threads: int) -> tuple:
    """(params, model, `szflow.detect.InferenceSettings`) of this process, loaded once per process:
    process-pool jobs share the worker's model instead of loading it per job."""
    key = (params_dir, checkpoint, device)
    if key not in _WORKER_MODELS:
        torch.set_num_threads(torch_threads)
        params = load_params(params_dir)
        settings = InferenceSettings.from_params(params, device=device)
        model, _ = load_detector(checkpoint, expected_config=params.model, mamba_impl=params.hardware.mamba_impl,
                                 device=settings.device)
        _WORKER_MODELS[key] = (params, model, settings)
    return _WORKER_MODELS[key]
