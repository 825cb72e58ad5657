"""Benchmark: reading the 19 EEG electrodes of EDF files, ours vs pyedflib readSignal vs MNE.

Usage: python benchmarks/bench_edf_read.py [CORPUS] [--repeats 3] [--no-hour]

CORPUS is a folder holding EDF files (searched recursively; files listed in its
broken_files.json are skipped). Without it a synthetic corpus with the default SynthConfig is
generated in a temporary folder. A 1-hour, 250 Hz, 23-signal file (the case DESIGN.md §4
measured) is added unless --no-hour. Each reader reads every file; best of `--repeats` rounds,
the readers interleaved in each round so page-cache state is the same for all. Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyedflib

from szflow.config import SynthConfig
from szflow.data.edf import ELECTRODES, read_edf_header, read_eeg, select_electrodes
from szflow.synth import generate_corpus, make_plan, simulate
from szflow.synth.channels import SignalSpec
from szflow.synth.plan import RecordingSpec
from szflow.synth.writer import write_edf

TARGET = 0.9


def read_ours(path: Path) -> int:
    return sum(s.size for s in read_eeg(path).signals)


def read_pyedflib(path: Path) -> int:
    header = read_edf_header(path)  # the same label selection as ours, so the same channels
    with pyedflib.EdfReader(str(path)) as reader:
        return sum(reader.readSignal(i).size for i in select_electrodes(header))


def make_mne_reader():
    try:
        import mne
    except ImportError:
        return None

    def read_mne(path: Path) -> int:
        header = read_edf_header(path)
        labels = [header.labels[i] for i in select_electrodes(header)]
        raw = mne.io.read_raw_edf(path, include=labels, preload=True, verbose="error")
        return raw.get_data().size

    return read_mne


def hour_file(folder: Path) -> Path:
    """1 h at 250 Hz with 23 signals: the 19 electrodes, A1, A2, EKG and PHOTIC."""
    template = make_plan(SynthConfig(patients={"train": 1, "dev": 0, "eval": 0}, recordings_per_patient=1,
                                     broken_files=0)).recordings[0]
    signals = [SignalSpec(f"EEG {e}-REF", "eeg", e, 250.0) for e in ELECTRODES[:16]]
    signals += [SignalSpec(f"EEG {e}-REF", "eeg", e, 250.0) for e in ("A1", "A2")]
    signals += [SignalSpec(f"EEG {e}-REF", "eeg", e, 250.0) for e in ELECTRODES[16:]]
    signals += [SignalSpec("EEG EKG1-REF", "ekg", "", 250.0), SignalSpec("PHOTIC-REF", "photic", "", 250.0, "mV")]
    spec = RecordingSpec(**{**template.__dict__, "montage": "01_tcp_ar", "rate": 250.0, "duration_s": 3600.0,
                            "signals": tuple(signals), "seizures": (), "broken": None})
    path = folder / "hour_250hz_23sig.edf"
    write_edf(path, spec, simulate(spec).signals)
    return path


def corpus_files(root: Path) -> list[Path]:
    broken: set[str] = set()
    listing = root / "broken_files.json"
    if listing.exists():
        broken = {item["path"] for item in json.loads(listing.read_text())["files"]}
    return sorted(p for p in root.rglob("*.edf") if p.relative_to(root).as_posix() not in broken)


def time_readers(files: list[Path], readers: dict, repeats: int) -> dict[str, float]:
    best = {name: float("inf") for name in readers}
    for _ in range(repeats):
        for name, reader in readers.items():
            start = time.perf_counter()
            for path in files:
                reader(path)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, help="folder of EDF files (default: generate one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-hour", action="store_true", help="skip the 1-hour 250 Hz file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_edf_") as tmp:
        tmp_path = Path(tmp)
        root = args.corpus
        if root is None:
            root = tmp_path / "corpus"
            print("generating a synthetic corpus (default SynthConfig) ...", file=sys.stderr)
            generate_corpus(root, SynthConfig(), progress=False)
        cases = {"corpus": corpus_files(root)}
        if not args.no_hour:
            cases["1 h 250 Hz 23 signals"] = [hour_file(tmp_path)]

        readers = {"ours": read_ours, "pyedflib": read_pyedflib}
        mne_reader = make_mne_reader()
        if mne_reader is None:
            print("note: mne is not importable; its column is skipped", file=sys.stderr)
        else:
            readers["mne"] = mne_reader

        # Same samples from every reader (a benchmark of readers that disagree would be moot).
        for files in cases.values():
            counts = {name: reader(files[0]) for name, reader in readers.items()}
            assert len(set(counts.values())) == 1, counts

        totals = dict.fromkeys(readers, 0.0)
        hours_total = 0.0
        print(f"{'case':<24}{'files':>6}{'hours':>8}" + "".join(f"{name + ' s':>12}" for name in readers)
              + f"{'pyedflib/ours':>15}{'mne/ours':>10}")
        for case, files in cases.items():
            hours = sum(read_edf_header(p).duration_s for p in files) / 3600.0
            best = time_readers(files, readers, args.repeats)
            hours_total += hours
            for name in readers:
                totals[name] += best[name]
            mne_ratio = f"{best['mne'] / best['ours']:>10.2f}" if "mne" in best else f"{'-':>10}"
            print(f"{case:<24}{len(files):>6}{hours:>8.2f}" + "".join(f"{best[n]:>12.3f}" for n in readers)
                  + f"{best['pyedflib'] / best['ours']:>15.2f}" + mne_ratio)

    result = {
        "benchmark": "edf_read",
        "ours_s": round(totals["ours"], 4),
        "pyedflib_s": round(totals["pyedflib"], 4),
        "mne_s": round(totals["mne"], 4) if "mne" in totals else None,
        "hours_of_eeg": round(hours_total, 3),
        "ratio": round(totals["pyedflib"] / totals["ours"], 3),
        "ratio_vs_mne": round(totals["mne"] / totals["ours"], 3) if "mne" in totals else None,
        "target": TARGET,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
