"""Run every CPU benchmark in sequence, each in its own process, and write one dated report.

    python benchmarks/run_all.py [--quick] [--out DIR] [--only NAME ...]

Sizes are those of the reference sitting (about 12-15 minutes on a quiet 2-core machine; most of it
the 24 h detect file and the model benchmark). `--quick` runs the smoke sizes instead (a check that
every script runs end to end; its numbers are not measurements). The report holds the machine (CPU
model and flags, torch and numpy versions, load), then per benchmark its headline ratio, every other
ratio and whether each target holds. It is printed as Markdown; with `--out DIR` it is also written
to DIR/benchmarks-<UTC timestamp>.json and .md. `benchmarks/gpu_model_check.py` is not run here:
it needs a CUDA GPU (and mamba_ssm for its comparison).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO_ROOT, machine_info

HERE = Path(__file__).resolve().parent
# (script, arguments of the reference sitting); --quick replaces the arguments with --quick.
BENCHMARKS = {
    "edf_read": ("bench_edf_read.py", ["--patients", "4", "--repeats", "3"]),
    "preprocess": ("bench_preprocess.py", ["--patients", "2", "--repeat", "3"]),
    "cache": ("bench_cache.py", ["--hours", "4", "--windows", "3000", "--npz-windows", "200", "--repeat", "3"]),
    "model_cpu": ("bench_model_cpu.py", ["--reps", "3"]),  # mambapy: ~55 s a round
    "train": ("bench_train.py", ["--steps", "4"]),
    "scoring": ("bench_scoring.py", ["--recordings", "2000", "--repeats", "3"]),
    "detect_24h": ("bench_detect_24h.py", ["--hours", "24"]),
    "stage_inference": ("bench_stage_inference.py", ["--hours", "1", "--repeat", "3"]),
}
# The ratios and values each report row shows, beside the headline `ratio`.
COLUMNS = {
    "edf_read": ["ratio_vs_pyedflib", "max_abs_difference_vs_mne"],
    "preprocess": ["ratio_vs_mne_defaults", "x_realtime", "corpus.max_abs_diff_mne_same_config_interior"],
    "cache": ["ratio_vs_npz", "windows_per_s", "mb_per_eeg_hour"],
    "model_cpu": ["ratios.train_vs_mamba1_mambapy", "ratios.infer_vs_mamba2_transformers",
                  "ratios.infer_vs_mamba1_mambapy", "inference_s_per_eeg_hour",
                  "max_abs_logit_difference_vs_transformers"],
    "train": ["loop_windows_per_s", "model_only_windows_per_s"],
    "scoring": ["ours_s", "sweep_50_thresholds_s"],
    "detect_24h": ["s_per_eeg_hour", "peak_rss_mb", "overhead_ratio"],
    "stage_inference": ["stage_s_per_eeg_hour", "floor_s_per_eeg_hour", "ratio_vs_no_overlap_floor"],
}


def run_one(name: str, quick: bool) -> dict:
    script, arguments = BENCHMARKS[name]
    command = [sys.executable, str(HERE / script), *(["--quick"] if quick else arguments)]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    process = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = [line for line in process.stdout.splitlines() if line.strip()]
    for line in lines[:-1]:
        print(f"   {line}", flush=True)
    if process.returncode != 0 or not lines or not lines[-1].startswith("{"):
        print(process.stderr[-3000:], file=sys.stderr)
        return {"benchmark": name, "error": f"exit code {process.returncode}", "wall_s": round(seconds, 1)}
    result = json.loads(lines[-1])
    result["wall_s"] = round(seconds, 1)
    return result


def lookup(result: dict, dotted: str):
    value = result
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def shown(value) -> str:
    """A value for the table: floats to 3 significant digits (a report, not a data file)."""
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, dict) else str(value)


def markdown(report: dict) -> str:
    machine = report["machine"]
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in machine["cpu_flags"].items())
    lines = [
        f"# Benchmarks, {machine['date_utc']}{' (QUICK smoke run: not measurements)' if report['quick'] else ''}",
        "",
        (f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs; flags: {flags}; torch "
         f"{machine['torch']} ({machine['torch_threads']} threads), numpy {machine['numpy']}, python "
         f"{machine['python']}; 1-minute load average at the start {machine['load_average_1min']}."),
        "",
        "| benchmark | ratio | what the ratio is | other values | targets met | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in report["results"].items():
        if "error" in result:
            lines.append(f"| {name} | failed: {result['error']} | | | | {result['wall_s']} |")
            continue
        others = "; ".join(f"{key.split('.')[-1]} {shown(lookup(result, key))}" for key in COLUMNS[name])
        targets = result.get("meets_targets")
        lines.append(f"| {name} | {shown(result.get('ratio'))} | {result.get('ratio_is', '')} | {others} | "
                     f"{shown(targets) if targets is not None else '-'} | {result['wall_s']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke sizes: checks the scripts, measures nothing")
    parser.add_argument("--out", type=Path, help="folder for the dated .json and .md report")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args(argv)
    report = {"quick": args.quick, "machine": machine_info(), "results": {}}
    started = time.perf_counter()
    for name in args.only or BENCHMARKS:
        report["results"][name] = run_one(name, args.quick)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    text = markdown(report) + f"\nTotal wall time: {report['wall_s']} s.\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = report["machine"]["date_utc"].replace(":", "").replace("-", "")
        (args.out / f"benchmarks-{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
        (args.out / f"benchmarks-{stamp}.md").write_text(text)
    failed = [name for name, result in report["results"].items() if "error" in result]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
