"""Preprocessing throughput and output, ours against MNE configured the same way and MNE's defaults,
in one run on the same files.

    python benchmarks/bench_preprocess.py [--repeat 3] [--corpus DIR] [--patients 2] [--quick]
    python benchmarks/bench_preprocess.py --rss CORPUS [CORPUS ...]

Ours: `read_eeg` + `preprocess_recording` (polyphase resampling to `preprocess.sample_rate_hz`,
common average reference, zero-phase Butterworth band-pass of `preprocess.bandpass_order` + notch as
one forward-backward pass, robust normalisation), with params.yaml's `preprocess` section. Baselines:

- mne (same config): `read_raw_edf(preload)`, `resample(method="polyphase", pad="edge")` (the same
  Kaiser-windowed polyphase filter as ours), `set_eeg_reference("average")`,
  `filter(method="iir", iir_params=dict(order=..., ftype="butter", output="sos"))` zero-phase, and
  `notch_filter(method="iir")` with our notch's coefficients, zero-phase;
- mne (defaults): the same steps with MNE's defaults (FFT resampling, FIR band-pass, FIR notch);
- read floor: only reading the 19 electrodes with pyedflib `readSignal`.

Each baseline's output is normalised with our normalisation and compared with ours: max abs
difference in normalised units over the whole recording and over its interior (10 s from each end
left out, where the filters' edge padding differs). One process, one thread of work. Files: a
generated 1-hour, 250 Hz, 23-signal EDF and a corpus (`--corpus`, else one generated from params.yaml's
`synth` section with `--patients` patients per split: mixed sample rates). Best of `--repeat` per file,
the methods interleaved. Targets: >= 1,000x real time and >= 5x MNE, set against MNE's defaults.
Ends with one JSON line.

With `--rss` it instead runs the preprocess stage (`stages/preprocess.py`, this checkout's params
with `data.root` set to each corpus) and samples the resident memory of the stage's process tree
(parent + workers) every 50 ms: peak memory must follow the largest recording, not the corpus size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process, one thread: the per-process figure

import numpy as np
import pandas as pd
import psutil
import pyedflib
import yaml
from common import REPO_ROOT, corpus_edf_files, emit, interleaved_times, print_header, write_hour_edf
from scipy.signal import iirnotch

from szflow.config import PreprocessConfig, load_params
from szflow.data.discover import discover_corpus
from szflow.data.edf import read_edf_header, read_eeg, resolve_header
from szflow.errors import SzflowError
from szflow.signal.chain import preprocess_recording
from szflow.signal.normalise import normalise
from szflow.synth import generate_corpus
from szflow.synth.variants import VARIANT_KINDS

TARGET_X_REALTIME = 1000.0
TARGET_VS_MNE_DEFAULTS = 5.0
EDGE_S = 10.0


def read_floor(path: Path) -> None:
    chosen = list(resolve_header(read_edf_header(path)).sources)
    with pyedflib.EdfReader(str(path)) as reader:
        for index in chosen:
            reader.readSignal(index)


def ours(path: Path, cfg: PreprocessConfig) -> np.ndarray:
    return preprocess_recording(read_eeg(path), cfg)


def mne_raw(path: Path):
    """The 19 electrodes (our label selection), in our order."""
    import mne

    header = read_edf_header(path)
    names = [header.labels[i] for i in list(resolve_header(header).sources)]
    raw = mne.io.read_raw_edf(str(path), include=names, preload=True, verbose="error")
    return raw.reorder_channels(names)


def mne_same_config(path: Path, cfg: PreprocessConfig) -> np.ndarray:
    raw = mne_raw(path)
    raw.resample(cfg.sample_rate_hz, method="polyphase", pad="edge", verbose="error")
    raw.set_eeg_reference("average", projection=False, verbose="error")
    low, high = cfg.bandpass_hz
    raw.filter(low, high, method="iir", phase="zero", verbose="error",
               iir_params={"order": cfg.bandpass_order, "ftype": "butter", "output": "sos"})
    if cfg.notch_hz is not None:
        b, a = iirnotch(cfg.notch_hz, cfg.notch_quality, fs=cfg.sample_rate_hz)
        raw.notch_filter(cfg.notch_hz, method="iir", phase="zero", iir_params={"b": b, "a": a}, verbose="error")
    return raw.get_data()


def mne_defaults(path: Path, cfg: PreprocessConfig) -> np.ndarray:
    raw = mne_raw(path)
    raw.resample(cfg.sample_rate_hz, verbose="error")
    raw.set_eeg_reference("average", projection=False, verbose="error")
    raw.filter(cfg.bandpass_hz[0], cfg.bandpass_hz[1], verbose="error")
    if cfg.notch_hz is not None:
        raw.notch_filter(cfg.notch_hz, verbose="error")
    return raw.get_data()


def normalised_difference(ours_block: np.ndarray, theirs: np.ndarray, cfg: PreprocessConfig) -> tuple[float, float]:
    """(max abs difference over the whole recording, over its interior) after normalising `theirs`
    like ours (median/IQR per channel, clipped)."""
    block = theirs.astype(np.float32)
    normalise(block, cfg.normalisation, cfg.clip)
    n = min(block.shape[1], ours_block.shape[1])
    diff = np.abs(block[:, :n] - ours_block[:, :n])
    edge = int(EDGE_S * cfg.sample_rate_hz)
    return float(diff.max()), float(diff[:, edge: n - edge].max()) if n > 2 * edge else float("nan")


def measure(paths: list[Path], cfg: PreprocessConfig, repeat: int) -> dict:
    methods = {"read_floor": read_floor, "ours": ours, "mne_same_config": mne_same_config,
               "mne_defaults": mne_defaults}
    hours = sum(read_edf_header(p).duration_s for p in paths) / 3600
    timings = dict.fromkeys(methods, 0.0)
    differences = {name: [0.0, 0.0] for name in ("mne_same_config", "mne_defaults")}
    for path in paths:
        reference = ours(path, cfg)  # also the warm-up of every method below
        for name in differences:
            whole, interior = normalised_difference(reference, methods[name](path, cfg), cfg)
            differences[name] = [max(differences[name][0], whole), max(differences[name][1], interior)]
        read_floor(path)
        calls = {name: (lambda p=path, f=fn: f(p) if f is read_floor else f(p, cfg)) for name, fn in methods.items()}
        for name, values in interleaved_times(calls, repeat).items():
            timings[name] += min(values)
    result = {"recordings": len(paths), "eeg_hours": round(hours, 4)}
    result.update({f"{name}_s_per_eeg_hour": round(seconds / hours, 4) for name, seconds in timings.items()})
    result["x_realtime"] = round(3600 * hours / timings["ours"], 1)
    result["vs_mne_same_config"] = round(timings["mne_same_config"] / timings["ours"], 2)
    result["vs_mne_defaults"] = round(timings["mne_defaults"] / timings["ours"], 2)
    result["vs_read_floor"] = round(timings["read_floor"] / timings["ours"], 3)
    for name, (whole, interior) in differences.items():
        result[f"max_abs_diff_{name}"] = round(whole, 5)
        result[f"max_abs_diff_{name}_interior"] = round(interior, 5)
    return result


def readable_recordings(root: Path) -> list[Path]:
    files = []
    for path in corpus_edf_files(root):
        try:
            read_eeg(path)
        except SzflowError:
            continue
        files.append(path)
    return files


def stage_peak_rss(corpus: Path, interval_s: float = 0.05) -> dict:
    """Run the preprocess stage on `corpus` in a scratch project; peak RSS of its process tree."""
    table = discover_corpus(corpus)
    largest_s = max((read_edf_header(p).duration_s for p in readable_recordings(corpus)), default=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        params["data"]["root"] = str(corpus.resolve())
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        shutil.copytree(REPO_ROOT / "params", project / "params")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / "stages" / "preprocess.py")], cwd=project,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        root = psutil.Process(process.pid)
        peak_tree = peak_parent = peak_worker = 0
        while process.poll() is None:
            try:
                parent = root.memory_info().rss
                workers = [c.memory_info().rss for c in root.children(recursive=True)]
            except psutil.Error:
                continue
            peak_parent = max(peak_parent, parent)
            peak_worker = max([peak_worker, *workers])
            peak_tree = max(peak_tree, parent + sum(workers))
            time.sleep(interval_s)
        stderr = process.stderr.read() if process.stderr else ""
        wall = time.perf_counter() - started
        report = project / "data" / "preprocess" / "report.csv"
        rows = pd.read_csv(report) if report.exists() else None
    hours = float(rows["duration_s"].fillna(0).sum() / 3600) if rows is not None else 0.0
    return {
        "corpus": str(corpus), "recordings": len(table),
        "ok": int((rows["status"] == "ok").sum()) if rows is not None else 0,
        "eeg_hours": round(hours, 3), "largest_recording_s": largest_s, "exit_code": process.returncode,
        "wall_s": round(wall, 1), "peak_tree_rss_mb": round(peak_tree / 2**20, 1),
        "peak_parent_rss_mb": round(peak_parent / 2**20, 1), "peak_worker_rss_mb": round(peak_worker / 2**20, 1),
        **({"stderr_tail": stderr[-300:]} if process.returncode else {}),
    }


def run_rss(corpora: list[Path], machine: dict) -> None:
    runs = [stage_peak_rss(corpus) for corpus in corpora]
    for run in runs:
        print(run, flush=True)
    base = runs[0]
    emit({
        "benchmark": "preprocess_peak_rss", "machine": machine, "runs": runs,
        "ratio": round(runs[-1]["peak_tree_rss_mb"] / base["peak_tree_rss_mb"], 3) if base["peak_tree_rss_mb"] else None,
        "hours_ratio": round(runs[-1]["eeg_hours"] / base["eeg_hours"], 3) if base["eeg_hours"] else None,
    })


def print_run(name: str, run: dict) -> None:
    print(f"{name}: {run['recordings']} recordings, {run['eeg_hours']:.2f} h")
    for method in ("read_floor", "ours", "mne_same_config", "mne_defaults"):
        seconds = run[f"{method}_s_per_eeg_hour"]
        ratio = run["ours_s_per_eeg_hour"] and seconds / run["ours_s_per_eeg_hour"]
        extra = ""
        if method.startswith("mne"):
            extra = (f"  max abs diff (normalised): {run[f'max_abs_diff_{method}']:.4f} whole, "
                     f"{run[f'max_abs_diff_{method}_interior']:.4f} interior")
        print(f"  {method:<17}{seconds:>9.3f} s/EEG h  {ratio:>6.2f}x ours{extra}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, help="folder of EDF files (default: generate one)")
    parser.add_argument("--patients", type=int, default=2, help="patients per split of the generated corpus")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6-minute EDF, 1 patient per split, 1 round")
    parser.add_argument("--rss", type=Path, nargs="+", metavar="CORPUS",
                        help="measure the preprocess stage's peak RSS on these corpora instead")
    args = parser.parse_args(argv)
    machine = print_header("preprocess")
    if args.rss:
        run_rss(args.rss, machine)
        return 0
    hours = 1.0
    if args.quick:
        hours, args.patients, args.repeat = 0.1, 1, 1
    split_patients = {"train": args.patients, "dev": args.patients, "eval": args.patients}
    params = load_params(REPO_ROOT, overrides={
        "synth.patients": split_patients, "synth.background_recordings": {"train": 0, "dev": 0, "eval": 0},
        # Plain referential TUSZ files only: the comparison readers (MNE) take no bipolar or EDF+D forms.
        **{f"synth.variant_fractions.{kind}": 0.0 for kind in VARIANT_KINDS}})
    cfg = params.preprocess

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hour = measure([write_hour_edf(tmp, params, hours)], cfg, args.repeat)
        print_run(f"{hours:g} h 250 Hz EDF", hour)
        corpus_root = args.corpus
        if corpus_root is None:
            corpus_root = tmp / "corpus"
            generate_corpus(corpus_root, params.synth, progress=False)
        corpus = measure(readable_recordings(corpus_root), cfg, args.repeat)
        print_run(f"corpus {args.corpus or 'generated'}", corpus)

    meets = {name: {"x_realtime": run["x_realtime"] >= TARGET_X_REALTIME,
                    "vs_mne_defaults": run["vs_mne_defaults"] >= TARGET_VS_MNE_DEFAULTS}
             for name, run in (("one_hour_edf", hour), ("corpus", corpus))}
    emit({
        "benchmark": "preprocess",
        "quick": args.quick,
        "machine": machine,
        "ratio": corpus["vs_mne_same_config"],
        "ratio_is": "MNE configured as ours (IIR Butterworth, polyphase) s / ours s, corpus",
        "ratio_vs_mne_defaults": corpus["vs_mne_defaults"],
        "x_realtime": corpus["x_realtime"],
        "one_hour_edf": hour,
        "corpus": corpus,
        "targets": {"x_realtime": TARGET_X_REALTIME, "vs_mne_defaults": TARGET_VS_MNE_DEFAULTS},
        "meets_targets": meets,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
