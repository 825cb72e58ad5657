"""Benchmark: `szflow detect` on a 24-hour EDF: peak memory and seconds per hour of EEG.

Usage: python benchmarks/bench_detect_24h.py [--hours 24] [--cache /tmp/szflow_bench] [--batch-size N]
                                             [--device cpu]

Writes (once, then reuses from --cache) a 24 h and a 1 h EDF: the 19 EEG electrodes with TUSZ
labels plus EKG, PHOTIC and EMG, all at 250 Hz, 1 s records, filled with smoothed noise plus an
alpha rhythm. Generation is chunked (10 minutes at a time through pyedflib's record writer), so it
is itself memory-bounded. The detector is the seed-size model of params.yaml with RANDOM weights
(timing and memory do not depend on the weights; the events are meaningless).

Each measurement is its own process (`szflow detect` as a user runs it), timed by wall clock, with
its peak resident memory from `wait4` (the kernel's ru_maxrss of that process). Baselines measured
in the same run: the preprocessing-only floor, i.e. `read_eeg` + `preprocess_recording` + float16
of the 1 h file (what any detector must pay before the network runs): `ratio` is detect's seconds
per EEG hour over it; and the network floor, forward passes of random windows only:
`overhead_ratio` is detect over the sum of both floors (1.0 = nothing but the unavoidable work).
Ends with one JSON line.
Targets: peak RSS <= 2 GB and <= 30 s per hour of EEG for the 24 h file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyedflib
import torch
from common import REPO_ROOT, emit, print_header
from scipy.signal import lfilter

from szflow.config import load_params
from szflow.data.edf import ELECTRODES
from szflow.io_utils import atomic_path
from szflow.model import Detector, save_checkpoint

ROOT = REPO_ROOT
RATE = 250
CHUNK_S = 600
TARGET_RSS_MB = 2048
TARGET_S_PER_HOUR = 30.0


def write_long_edf(path: Path, hours: float, seed: int = 0) -> Path:
    """A `hours`-long 250 Hz EDF written chunk by chunk (never more than 10 minutes in memory: the
    synthetic corpus's writer holds a whole recording, 3.8 GB for 24 h)."""
    labels = [f"EEG {name}-REF" for name in ELECTRODES] + ["EKG1", "PHOTIC PH", "EMG"]
    n_signals = len(labels)
    limit = 2000.0
    gain = 2 * limit / 65535
    rng = np.random.default_rng(seed)
    # A one-pole low-pass (1/f-like) background per channel, with state carried across chunks.
    b, a = [0.08], [1.0, -0.92]
    state = np.zeros((n_signals, 1))
    t0 = 0
    n_chunks = round(hours * 3600 / CHUNK_S)
    with atomic_path(path) as tmp:
        writer = pyedflib.EdfWriter(str(tmp), n_signals, file_type=pyedflib.FILETYPE_EDF)
        try:
            writer.setSignalHeaders([
                {"label": label, "dimension": "uV", "sample_frequency": RATE, "physical_max": limit,
                 "physical_min": -limit, "digital_max": 32767, "digital_min": -32768, "transducer": "",
                 "prefilter": ""} for label in labels])
            for _ in range(n_chunks):
                n = CHUNK_S * RATE
                noise = rng.standard_normal((n_signals, n))
                background, state = lfilter(b, a, noise, axis=1, zi=state)
                t = (t0 + np.arange(n)) / RATE
                alpha = 15.0 * np.sin(2 * np.pi * 10.0 * t)
                physical = 120.0 * background + alpha[None, :]
                digital = np.clip(np.rint((physical + limit) / gain - 32768), -32768, 32767).astype(np.int16)
                # One data record = 1 s of every signal, signals one after another.
                records = digital.reshape(n_signals, CHUNK_S, RATE).transpose(1, 0, 2).reshape(CHUNK_S, -1)
                for record in np.ascontiguousarray(records):
                    if writer.blockWriteDigitalShortSamples(record) < 0:
                        raise OSError(f"{path}: pyedflib could not write a record")
                t0 += n
        finally:
            writer.close()
    return path


def cached_edf(cache: Path, hours: float) -> Path:
    path = cache / f"detect_{hours:g}h.edf"
    n_signals = 22
    expected = 256 * (n_signals + 1) + int(hours * 3600) * n_signals * RATE * 2
    if not path.exists() or path.stat().st_size != expected:
        started = time.perf_counter()
        write_long_edf(path, hours)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    return path


def seed_model(cache: Path) -> tuple[Path, Path]:
    """best.pt with the params.yaml model and random weights, and an operating_points.json beside it."""
    params = load_params(ROOT)
    folder = cache / "model"
    checkpoint = folder / "best.pt"
    torch.manual_seed(0)
    save_checkpoint(checkpoint, model=Detector(params.model, mamba_impl="torch"), model_config=params.model, step=0)
    point = {"smoothing_s": 2.0, "threshold": 0.5, "hysteresis_low": None, "min_duration_s": 5.0, "merge_gap_s": 5.0}
    (folder / "operating_points.json").write_text(json.dumps({"checkpoint_step": 0, "detector": {"10": point}}))
    return checkpoint, folder


def measure(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err, text=True)
        # wait4 gives this child's own peak RSS (ru_maxrss, KB on Linux), not the maximum over all children.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({process.returncode}):\n{stdout}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stdout


FLOOR = r"""
import sys, time
import numpy as np
from szflow.config import load_params
from szflow.data.edf import read_eeg
from szflow.signal.chain import preprocess_recording
params = load_params(sys.argv[2])
started = time.perf_counter()
block = preprocess_recording(read_eeg(sys.argv[1]), params.preprocess).astype(np.float16)
print(time.perf_counter() - started)
"""


NETWORK = r"""
import sys, time
import torch
from szflow.config import load_params
from szflow.model import Detector
params = load_params(sys.argv[1])
batch = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "None" else params.hardware.inference_batch_size
model = Detector(params.model, mamba_impl="torch").eval()
window = round(params.sampler.window_s * params.preprocess.sample_rate_hz)
hop_s = params.sampler.window_s - params.sampler.inference_overlap_s
x = torch.randn(batch, 19, window)
from szflow.inference import autocast
with torch.inference_mode(), autocast("cpu", params.hardware.precision):  # detect's precision
    model(x)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - started)
print(best / batch * 3600 / hop_s)
"""


def detect_command(edf: Path, checkpoint: Path, out: Path, batch_size: int | None, device: str) -> list[str]:
    args = [sys.executable, "-c", "from szflow.cli import main; main()", "detect", str(edf), "--checkpoint",
            str(checkpoint), "--out", str(out), "--params-dir", str(ROOT), "--device", device, "--no-progress"]
    return args + (["--batch-size", str(batch_size)] if batch_size else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/szflow_bench"))
    parser.add_argument("--batch-size", type=int, default=None, help="default: the hardware profile's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: a 10-minute file instead of 24 h and 1 h, batch 2")
    args = parser.parse_args()
    if args.quick:
        args.hours, args.batch_size = CHUNK_S / 3600, 2  # one 10-minute chunk
    machine = print_header("detect_24h")
    args.cache.mkdir(parents=True, exist_ok=True)

    long_edf = cached_edf(args.cache, args.hours)
    hour_edf = cached_edf(args.cache, min(1.0, args.hours))
    checkpoint, _ = seed_model(args.cache)
    out = args.cache / "detections"

    # The floor: best of 2 (noise on a shared machine only ever adds time).
    floor_runs = [measure([sys.executable, "-c", FLOOR, str(hour_edf), str(ROOT)]) for _ in range(2)]
    floor_s = min(float(stdout.strip()) for _, _, stdout in floor_runs)
    floor_rss = min(rss for _, rss, _ in floor_runs)
    print(f"preprocessing floor, 1 h: {floor_s:.2f} s (in-process), peak RSS {floor_rss:.0f} MB", file=sys.stderr)

    network_runs = [measure([sys.executable, "-c", NETWORK, str(ROOT), str(args.batch_size)]) for _ in range(2)]
    network_s = min(float(stdout.strip()) for _, _, stdout in network_runs)
    print(f"network floor: {network_s:.2f} s per EEG hour (forward passes only)", file=sys.stderr)

    hour_s, hour_rss, _ = measure(detect_command(hour_edf, checkpoint, out, args.batch_size, args.device))
    print(f"detect 1 h: {hour_s:.1f} s, peak RSS {hour_rss:.0f} MB", file=sys.stderr)
    long_s, long_rss, stdout = measure(detect_command(long_edf, checkpoint, out, args.batch_size, args.device))
    print(f"detect {args.hours:g} h: {long_s:.1f} s, peak RSS {long_rss:.0f} MB", file=sys.stderr)
    print(stdout.strip(), file=sys.stderr)

    s_per_hour = long_s / args.hours
    emit({
        "benchmark": "detect_24h",
        "quick": args.quick,
        "machine": machine,
        "hours": args.hours,
        "peak_rss_mb": round(long_rss, 1),
        "s_per_eeg_hour": round(s_per_hour, 2),
        "ratio": round(s_per_hour / floor_s, 2),
        "ratio_is": "detect s per EEG hour (24 h file, whole command) / preprocessing-only floor s per EEG hour",
        "baseline_preprocess_s_per_eeg_hour": round(floor_s, 2),
        "network_floor_s_per_eeg_hour": round(network_s, 2),
        "overhead_ratio": round(s_per_hour / (floor_s + network_s), 2),
        "detect_1h_s": round(hour_s, 2),
        "detect_1h_peak_rss_mb": round(hour_rss, 1),
        "device": args.device,
        "model": "params.yaml seed size, random weights",
        "targets": {"peak_rss_mb": TARGET_RSS_MB, "s_per_eeg_hour": TARGET_S_PER_HOUR},
        "meets_targets": {"peak_rss_mb": long_rss <= TARGET_RSS_MB, "s_per_eeg_hour": s_per_hour <= TARGET_S_PER_HOUR},
    })


if __name__ == "__main__":
    main()
