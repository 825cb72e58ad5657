"""Preprocessing throughput, measured in one run against two baselines on the same files:

- floor: only reading the 19 EEG channels with pyedflib `readSignal` (no processing at all);
- MNE: read_raw_edf(preload) + set_eeg_reference('average') + resample(256) + filter(0.5, 120)
  + notch_filter(60), i.e. the same steps in a typical MNE pipeline.

Ours is `read_eeg` + `preprocess_recording` (resample, CAR, zero-phase band-pass + notch, robust
normalisation), one process, one thread of work. Files: a generated 1-hour, 250 Hz, 23-signal
TUSZ-like EDF, and the synthetic corpus (data/synth) if present. Best of `--repeat` per file.
Targets (DESIGN.md §4): >= 1,000x real time, >= 5x MNE. Ends with one JSON line.

    python benchmarks/bench_preprocess.py [--repeat 3] [--corpus data/synth] [--max-recordings 0]

With `--rss CORPUS [CORPUS ...]` it instead runs the preprocess stage (`stages/preprocess.py`,
the params of this checkout with `data.root` set to each corpus) and samples the resident memory
of the stage's process tree (parent + workers) every 50 ms: peak memory must follow the largest
recording, not the corpus size. Ends with one JSON line too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process, one thread: the per-process figure

import numpy as np
import pyedflib

from szflow.config import PreprocessConfig
from szflow.data.edf import ELECTRODES, read_edf_header, read_eeg, select_electrodes
from szflow.signal.pipeline import preprocess_recording

TARGET_X_REALTIME = 1000.0
TARGET_VS_MNE = 5.0


def write_test_edf(path: Path, hours: float = 1.0, rate: int = 250) -> None:
    """19 EEG electrodes (TUSZ labels) + EKG, PHOTIC, and two 1 Hz channels = 23 signals."""
    rng = np.random.default_rng(0)
    n = int(hours * 3600 * rate)
    t = np.arange(n) / rate
    labels = [f"EEG {e}-REF" for e in ELECTRODES] + ["EEG EKG1-REF", "PHOTIC-REF", "IBI", "BURSTS"]
    headers, data = [], []
    for label in labels:
        slow = label in ("IBI", "BURSTS")
        fs = 1 if slow else rate
        headers.append({"label": label, "dimension": "uV", "sample_frequency": fs, "physical_min": -2000.0,
                        "physical_max": 2000.0, "digital_min": -32768, "digital_max": 32767,
                        "transducer": "", "prefilter": ""})
        if slow:
            data.append(np.zeros(int(hours * 3600)))
        else:
            signal = rng.normal(0, 25, n) + 40 * np.sin(2 * np.pi * 10 * t) + 15 * np.sin(2 * np.pi * 60 * t)
            data.append(np.clip(signal, -2000, 2000))
    writer = pyedflib.EdfWriter(str(path), len(labels), file_type=pyedflib.FILETYPE_EDF)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples(data)
    finally:
        writer.close()


def interleaved_best(methods: dict, repeat: int) -> dict[str, float]:
    """Best time of each method over `repeat` rounds, the methods taking turns within a round, so
    that load from other processes on a shared machine hits every method alike."""
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(repeat):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def read_floor(path: Path) -> None:
    chosen = select_electrodes(read_edf_header(path))
    reader = pyedflib.EdfReader(str(path))
    try:
        for index in chosen:
            reader.readSignal(index)
    finally:
        reader.close()


def ours(path: Path, cfg: PreprocessConfig) -> np.ndarray:
    return preprocess_recording(read_eeg(path), cfg)


def mne_pipeline(path: Path, cfg: PreprocessConfig) -> None:
    import mne

    header = read_edf_header(path)
    names = [header.labels[i] for i in select_electrodes(header)]
    raw = mne.io.read_raw_edf(str(path), include=names, preload=True, verbose="error")
    raw.set_eeg_reference("average", projection=False, verbose="error")
    raw.resample(cfg.sample_rate_hz, verbose="error")
    raw.filter(cfg.bandpass_hz[0], cfg.bandpass_hz[1], verbose="error")
    raw.notch_filter(cfg.notch_hz, verbose="error")


def measure(paths: list[Path], cfg: PreprocessConfig, repeat: int, with_mne: bool) -> dict:
    hours = sum(read_edf_header(p).duration_s for p in paths) / 3600
    timings = dict.fromkeys(["read_floor_s", "ours_s"] + (["mne_s"] if with_mne else []), 0.0)
    for path in paths:
        methods = {"read_floor_s": lambda p=path: read_floor(p), "ours_s": lambda p=path: ours(p, cfg)}
        if with_mne:
            methods["mne_s"] = lambda p=path: mne_pipeline(p, cfg)
        for name, seconds in interleaved_best(methods, repeat).items():
            timings[name] += seconds
    result = {"recordings": len(paths), "eeg_hours": round(hours, 4)}
    for key, seconds in timings.items():
        name = key[:-2]
        result[f"{name}_s_per_eeg_hour"] = round(seconds / hours, 4)
    ours_per_hour = timings["ours_s"] / hours
    result["eeg_hours_per_s"] = round(1 / ours_per_hour, 3)
    result["x_realtime"] = round(3600 / ours_per_hour, 1)
    result["vs_read_floor"] = round(timings["read_floor_s"] / timings["ours_s"], 3)
    if with_mne:
        result["vs_mne"] = round(timings["mne_s"] / timings["ours_s"], 2)
    return result


def corpus_files(root: Path, limit: int) -> list[Path]:
    """Readable recordings of the corpus (the deliberately broken ones are skipped)."""
    from szflow.data.discover import discover_corpus
    from szflow.errors import SzflowError

    files = []
    for row in discover_corpus(root).itertuples():
        try:
            read_edf_header(row.edf_path)
            read_eeg(row.edf_path)
        except SzflowError:
            continue
        files.append(Path(row.edf_path))
        if limit and len(files) >= limit:
            break
    return files


def stage_peak_rss(corpus: Path, repo: Path, interval_s: float = 0.05) -> dict:
    """Run the preprocess stage on `corpus` in a scratch project; peak RSS of its process tree."""
    import shutil
    import subprocess

    import psutil
    import yaml

    from szflow.data.discover import discover_corpus

    table = discover_corpus(corpus)
    largest_s = max((read_edf_header(p).duration_s for p in table["edf_path"] if _readable(p)), default=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["data"]["root"] = str(corpus.resolve())
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        shutil.copytree(repo / "params", project / "params")
        env = {**os.environ, "PYTHONPATH": str(repo / "src")}
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(repo / "stages" / "preprocess.py")], cwd=project, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
        import pandas as pd

        rows = pd.read_csv(report) if report.exists() else None
    hours = float(rows["duration_s"].fillna(0).sum() / 3600) if rows is not None else 0.0
    return {
        "corpus": str(corpus), "recordings": len(table), "ok": int((rows["status"] == "ok").sum()) if rows is not None else 0,
        "eeg_hours": round(hours, 3), "largest_recording_s": largest_s, "exit_code": process.returncode,
        "wall_s": round(wall, 1), "peak_tree_rss_mb": round(peak_tree / 2**20, 1),
        "peak_parent_rss_mb": round(peak_parent / 2**20, 1), "peak_worker_rss_mb": round(peak_worker / 2**20, 1),
        **({"stderr_tail": stderr[-300:]} if process.returncode else {}),
    }


def _readable(path: str) -> bool:
    from szflow.errors import SzflowError

    try:
        read_edf_header(path)
        return True
    except SzflowError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"))
    parser.add_argument("--max-recordings", type=int, default=0,
                        help="recordings of the corpus to time (0, the default: all; the first few are not a representative mix of rates)")
    parser.add_argument("--no-mne", action="store_true")
    parser.add_argument("--rss", type=Path, nargs="+", metavar="CORPUS",
                        help="measure the preprocess stage's peak RSS on these corpora instead")
    args = parser.parse_args(argv)
    if args.rss:
        repo = Path(__file__).resolve().parents[1]
        runs = [stage_peak_rss(corpus, repo) for corpus in args.rss]
        for run in runs:
            print(json.dumps(run), file=sys.stderr)
        base = runs[0]
        print(json.dumps({
            "benchmark": "preprocess_peak_rss", "runs": runs,
            "ratio": round(runs[-1]["peak_tree_rss_mb"] / base["peak_tree_rss_mb"], 3) if base["peak_tree_rss_mb"] else None,
            "hours_ratio": round(runs[-1]["eeg_hours"] / base["eeg_hours"], 3) if base["eeg_hours"] else None,
        }))
        return 0
    cfg = PreprocessConfig()
    with_mne = not args.no_mne
    if with_mne:
        try:
            import mne  # noqa: F401
        except ImportError:
            print("mne not installed: MNE baseline skipped (pip install szflow[bench])", file=sys.stderr)
            with_mne = False

    with tempfile.TemporaryDirectory() as tmp:
        edf = Path(tmp) / "one_hour_250hz_23sig.edf"
        write_test_edf(edf)
        hour = measure([edf], cfg, args.repeat, with_mne)
    print(f"1-hour EDF: {json.dumps(hour)}", file=sys.stderr)

    synth = None
    if args.corpus.is_dir():
        files = corpus_files(args.corpus, args.max_recordings)
        if files:
            synth = measure(files, cfg, max(1, args.repeat - 1), with_mne)
            print(f"synthetic corpus ({args.corpus}): {json.dumps(synth)}", file=sys.stderr)

    result = {
        "benchmark": "preprocess",
        "ours_s_per_eeg_hour": hour["ours_s_per_eeg_hour"],
        "mne_s_per_eeg_hour": hour.get("mne_s_per_eeg_hour"),
        "read_floor_s_per_eeg_hour": hour["read_floor_s_per_eeg_hour"],
        "eeg_hours_per_s": hour["eeg_hours_per_s"],
        "x_realtime": hour["x_realtime"],
        "ratio": hour.get("vs_mne"),
        "vs_read_floor": hour["vs_read_floor"],
        "one_hour_edf": hour,
        "synthetic_corpus": synth,
        "targets": {"x_realtime": TARGET_X_REALTIME, "ratio_vs_mne": TARGET_VS_MNE},
        "meets_targets": {name: bool(run["x_realtime"] >= TARGET_X_REALTIME
                                     and (run.get("vs_mne") is None or run["vs_mne"] >= TARGET_VS_MNE))
                          for name, run in (("one_hour_edf", hour), ("synthetic_corpus", synth)) if run},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
