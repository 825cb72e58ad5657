"""Reading the 19 EEG electrodes of EDF files: ours (`szflow.data.edf.read_eeg`) against MNE's
`read_raw_edf(preload=True)` (the headline baseline) and bare pyedflib `readSignal`, in one run.

    python benchmarks/bench_edf_read.py [CORPUS] [--repeats 3] [--patients 4] [--no-hour] [--quick]

CORPUS is a folder of EDF files (searched recursively; files listed in its broken_files.json are
skipped). Without it, a synthetic corpus is generated from params.yaml's `synth` section with
`--patients` patients per split (the full default corpus is 640 recordings). A 1-hour, 250 Hz,
23-signal file (19 electrodes, A1, A2, EKG, PHOTIC) is added unless --no-hour. Every reader reads the
same channels (our label selection) of every file; each round runs the readers in turn, best of
`--repeats` rounds. Before timing, the decoded values are compared: the max abs difference, in the
file's physical units, between ours and each baseline over every chosen channel of every file.
Target (set against pyedflib): >= 0.9x its speed. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyedflib
from common import REPO_ROOT, corpus_edf_files, emit, interleaved_times, print_header, write_hour_edf

from szflow.config import load_params
from szflow.data.edf import read_edf_header, read_eeg, resolve_header
from szflow.synth import generate_corpus
from szflow.synth.variants import VARIANT_KINDS

TARGET_VS_PYEDFLIB = 0.9
# MNE returns volts; these are the factors from the EDF dimension strings it understands.
UNIT_PER_VOLT = {"uV": 1e6, "µV": 1e6, "mV": 1e3, "V": 1.0}


def read_ours(path: Path) -> list[np.ndarray]:
    return read_eeg(path).signals


def read_pyedflib(path: Path) -> list[np.ndarray]:
    header = read_edf_header(path)  # the same label selection as ours, so the same channels
    with pyedflib.EdfReader(str(path)) as reader:
        return [reader.readSignal(i) for i in list(resolve_header(header).sources)]


def read_mne(path: Path) -> list[np.ndarray]:
    """MNE's decode of our channels, in our order, converted back to the file's physical units."""
    import mne

    header = read_edf_header(path)
    chosen = list(resolve_header(header).sources)
    labels = [header.labels[i] for i in chosen]
    raw = mne.io.read_raw_edf(path, include=labels, preload=True, verbose="error")
    data = raw.get_data()
    rows = {name: row for row, name in enumerate(raw.ch_names)}
    return [data[rows[header.labels[i]]] * UNIT_PER_VOLT[header.dimensions[i]] for i in chosen]


def max_abs_difference(files: list[Path], reader) -> float:
    """Max over files and channels of |ours - reader| in physical units (lengths must agree)."""
    worst = 0.0
    for path in files:
        ours, theirs = read_ours(path), reader(path)
        if [len(s) for s in ours] != [len(s) for s in theirs]:
            raise SystemExit(f"{path}: sample counts differ: {[len(s) for s in ours]} vs {[len(s) for s in theirs]}")
        worst = max(worst, max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(ours, theirs,
                                                                                                   strict=True)))
    return worst


def time_case(files: list[Path], readers: dict, repeats: int) -> dict[str, float]:
    def read_all(reader):
        return lambda: [reader(path) for path in files]

    for reader in readers.values():
        read_all(reader)()  # warm-up: page cache, imports
    times = interleaved_times({name: read_all(reader) for name, reader in readers.items()}, repeats)
    return {name: min(values) for name, values in times.items()}


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, help="folder of EDF files (default: generate one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=int, default=4, help="patients per split of the generated corpus")
    parser.add_argument("--no-hour", action="store_true", help="skip the 1-hour 250 Hz file")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 patient per split, 2 rounds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.patients, args.repeats = 1, 2
    machine = print_header("edf_read")
    split_patients = {"train": args.patients, "dev": args.patients, "eval": args.patients}
    params = load_params(REPO_ROOT, overrides={
        "synth.patients": split_patients, "synth.background_recordings": {"train": 0, "dev": 0, "eval": 0},
        # Plain referential TUSZ files only: the comparison readers (MNE) take no bipolar or EDF+D forms.
        **{f"synth.variant_fractions.{kind}": 0.0 for kind in VARIANT_KINDS}})
    readers = {"ours": read_ours, "mne": read_mne, "pyedflib": read_pyedflib}

    with tempfile.TemporaryDirectory(prefix="bench_edf_") as tmp:
        tmp_path = Path(tmp)
        root = args.corpus
        if root is None:
            root = tmp_path / "corpus"
            print(f"generating a synthetic corpus (params.yaml synth, {args.patients} patients per split) ...",
                  flush=True)
            generate_corpus(root, params.synth, progress=False)
        cases = {"corpus": corpus_edf_files(root)}
        if not args.no_hour:
            cases["1 h 250 Hz 23 signals"] = [write_hour_edf(tmp_path, params)]

        differences = {name: max(max_abs_difference(files, readers[name]) for files in cases.values())
                       for name in ("mne", "pyedflib")}
        for name, value in differences.items():
            print(f"values: max abs difference ours vs {name}: {value:.3g} (physical units, every chosen channel)")

        totals = dict.fromkeys(readers, 0.0)
        hours_total = 0.0
        print(f"{'case':<24}{'files':>6}{'hours':>8}" + "".join(f"{name + ' s':>12}" for name in readers)
              + f"{'mne/ours':>10}{'pyedflib/ours':>15}")
        for case, files in cases.items():
            hours = sum(read_edf_header(p).duration_s for p in files) / 3600.0
            best = time_case(files, readers, args.repeats)
            hours_total += hours
            for name in readers:
                totals[name] += best[name]
            print(f"{case:<24}{len(files):>6}{hours:>8.2f}" + "".join(f"{best[n]:>12.3f}" for n in readers)
                  + f"{best['mne'] / best['ours']:>10.2f}{best['pyedflib'] / best['ours']:>15.2f}")

    emit({
        "benchmark": "edf_read",
        "quick": args.quick,
        "machine": machine,
        "ours_s": round(totals["ours"], 4),
        "mne_s": round(totals["mne"], 4),
        "pyedflib_s": round(totals["pyedflib"], 4),
        "hours_of_eeg": round(hours_total, 3),
        "ratio": round(totals["mne"] / totals["ours"], 3),
        "ratio_is": "MNE read_raw_edf(preload=True) s / ours s, same channels of the same files",
        "ratio_vs_pyedflib": round(totals["pyedflib"] / totals["ours"], 3),
        "max_abs_difference_vs_mne": differences["mne"],
        "max_abs_difference_vs_pyedflib": differences["pyedflib"],
        "targets": {"ratio_vs_pyedflib": TARGET_VS_PYEDFLIB},
        "meets_targets": {"ratio_vs_pyedflib": totals["pyedflib"] / totals["ours"] >= TARGET_VS_PYEDFLIB},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
