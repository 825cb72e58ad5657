"""The same recording in every form real EEG comes in: does `szflow detect` say the same thing?

    python benchmarks/montage_equivalence.py [--params-dir .] [--checkpoint models/best.pt]
        [--operating-points models/operating_points.json] [--background 10] [--limit N]
        [--workers 2] [--torch-threads 1] [--device cpu] [--out FILE.json]

Recordings: every seizure recording of the synthetic eval split (the plan of params.yaml's `synth`
section, `szflow.synth.make_plan`; the deliberately broken files left out) plus `--background`
seizure-free ones spread over the split's seizure-free list (short recordings and the hour-long
background ones alike); `--limit` keeps the first N of that list (a smoke run). Each recording is
written again (`szflow.synth.write_recording`, into a temporary folder) as plain referential TUSZ
(`EEG FP1-REF`, the reference) and in every other form: 10-10 labels, PhysioNet padded labels,
`-LE` and `-REF` suffixes, the CHB-MIT bipolar montage and the TUSZ TCP bipolar montage. Every file
goes through the library path of `szflow detect` (`szflow.detect.predict_segments`: electrode
resolver, preprocessing chain, the network with its presence mask, the frozen operating points), and
per form the script reports the largest and the mean absolute difference of the frame probabilities
from the referential file's, and per operating point the agreement of the events, scored like
NEDC OVLP with the referential file's events as the reference: the fraction of its events the form's
events hit, the events the form misses and the events it adds.

The label forms read the very same signals and should agree to the bit. The bipolar forms do not
carry every electrode (CHB-MIT: FZ CZ PZ are a chain connected to nothing else, so missing; TCP: FZ
and PZ are in no derivation), so the network sees 16 or 17 electrodes and a common average over
them: against the full referential file they are expected to differ, and the table says so. So each
recording is also written as a referential file lacking just those electrodes, and the bipolar
forms are compared with it too: that row is what the least-squares reconstruction itself changes
(with the EDF's 16-bit quantisation of the derivations), and the referential-less row is what the
missing electrodes alone change. Each recording is one job (all its 9 files); jobs run in
`--workers` processes (`szflow.process_pool`), each with `--torch-threads` torch threads. Cost: per
EEG hour and file about 1.6 CPU-s to simulate, 1.5 to preprocess and 3-9 to infer, so ~12 h of
recordings x 9 files is ~12-22 CPU-minutes (about half that wall time on two workers). Prints a
Markdown table; `--out` writes the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import worker_model

from szflow.config import load_params
from szflow.detect import predict_segments
from szflow.errors import SzflowError
from szflow.io_utils import atomic_write_json
from szflow.model.checkpoint import load_checkpoint
from szflow.operating_points import check_checkpoint_step, read_operating_points
from szflow.process_pool import run_in_processes
from szflow.scoring.nedc import ovlp_counts
from szflow.synth import make_plan, write_recording
from szflow.synth.variants import Variant

REFERENCE_FORM = "referential"
CHBMIT_MISSING, TCP_MISSING = ("FZ", "CZ", "PZ"), ("FZ", "PZ")
# Form name -> how it is written. The reference first.
FORMS: dict[str, Variant] = {
    REFERENCE_FORM: Variant(),
    "labels_1010": Variant("labels_1010"),
    "labels_padded": Variant("labels_padded"),
    "labels_suffix_LE": Variant("labels_suffix", suffix="-LE"),
    "labels_suffix_REF": Variant("labels_suffix", suffix="-REF"),
    "bipolar_chbmit": Variant("bipolar_chbmit"),
    "bipolar_tcp": Variant("bipolar_tcp"),
    # Referential files lacking what each bipolar montage lacks: the like-for-like references.
    "referential_less_FZ_CZ_PZ": Variant("missing_electrodes", absent=CHBMIT_MISSING),
    "referential_less_FZ_PZ": Variant("missing_electrodes", absent=TCP_MISSING),
}
SAME_SAMPLES = "the same samples under other labels: expected identical"
# (row, form, compared with, what to expect).
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("labels_1010", "labels_1010", REFERENCE_FORM, SAME_SAMPLES),
    ("labels_padded", "labels_padded", REFERENCE_FORM, SAME_SAMPLES),
    ("labels_suffix_LE", "labels_suffix_LE", REFERENCE_FORM, SAME_SAMPLES),
    ("labels_suffix_REF", "labels_suffix_REF", REFERENCE_FORM, SAME_SAMPLES),
    ("bipolar_chbmit", "bipolar_chbmit", REFERENCE_FORM,
     "FZ CZ PZ missing (their chain is connected to nothing else): expected to differ"),
    ("bipolar_chbmit vs referential less FZ CZ PZ", "bipolar_chbmit", "referential_less_FZ_CZ_PZ",
     "the same 16 electrodes: only the reconstruction (and EDF quantisation of the derivations) differs"),
    ("referential less FZ CZ PZ", "referential_less_FZ_CZ_PZ", REFERENCE_FORM,
     "the loss of the 3 electrodes alone"),
    ("bipolar_tcp", "bipolar_tcp", REFERENCE_FORM, "FZ PZ missing (in no TCP derivation): expected to differ"),
    ("bipolar_tcp vs referential less FZ PZ", "bipolar_tcp", "referential_less_FZ_PZ",
     "the same 17 electrodes: only the reconstruction (and EDF quantisation of the derivations) differs"),
    ("referential less FZ PZ", "referential_less_FZ_PZ", REFERENCE_FORM, "the loss of the 2 electrodes alone"),
)
CPU_S_PER_EEG_HOUR = {"simulate": 1.6, "preprocess": 1.5, "inference": (3.0, 9.0)}


@dataclasses.dataclass(frozen=True)
class Job:
    """One recording, to be written and detected in every form (small and picklable)."""

    spec: object  # szflow.synth.plan.RecordingSpec
    params_dir: str
    checkpoint: str
    points: dict
    device: str | None
    torch_threads: int
    folder: str


def compare(form: tuple, reference: tuple, points) -> dict:
    """Frame probabilities and events of one form against those of a reference form."""
    probabilities, events, montage = form
    ref_probabilities, ref_events, _ = reference
    n = min(len(probabilities), len(ref_probabilities))
    difference = np.abs(probabilities[:n].astype(np.float64) - ref_probabilities[:n])
    per_point = {}
    for key in points:
        hits, missed, added = ovlp_counts(ref_events[key], events[key])
        per_point[key] = {"reference_events": len(ref_events[key]), "events": len(events[key]),
                          "hits": hits, "missed": missed, "added": added,
                          "identical": events[key] == ref_events[key]}
    return {"frames": n, "frames_differ_in_length": len(probabilities) != len(ref_probabilities),
            "max_abs": float(difference.max(initial=0.0)), "sum_abs": float(difference.sum()),
            "n_present": montage.n_present, "missing": list(montage.missing), "points": per_point}


def compare_recording(job: Job) -> dict:
    """Write one recording in every form, detect on each, and make every comparison of COMPARISONS."""
    params, model, settings = worker_model(job.params_dir, job.checkpoint, job.device, job.torch_threads)
    spec = job.spec
    folder = Path(job.folder) / spec.bname
    result: dict = {"recording": spec.bname, "duration_s": float(spec.duration_s), "comparisons": {},
                    "failures": {}}
    outputs: dict[str, tuple] = {}
    try:
        for form, variant in FORMS.items():
            path = folder / form / f"{spec.bname}.edf"
            try:
                write_recording(path, dataclasses.replace(spec, variant=variant))
                prediction = predict_segments(path, model, params, settings=settings)
            except Exception as exc:  # noqa: BLE001 - one form failing is a result, the others go on
                result["failures"][form] = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                shutil.rmtree(path.parent, ignore_errors=True)
            events = {key: prediction.events(point) for key, point in job.points.items()}
            outputs[form] = (prediction.track.probabilities, events, prediction.montage)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for row, form, against, _ in COMPARISONS:
        if form in outputs and against in outputs:
            result["comparisons"][row] = compare(outputs[form], outputs[against], job.points)
    return result


def choose_recordings(specs, background: int, limit: int | None) -> list:
    """Every seizure recording, then `background` seizure-free ones spread over the seizure-free list."""
    usable = [s for s in specs if s.broken is None]
    seizure = [s for s in usable if s.seizures]
    quiet = [s for s in usable if not s.seizures]
    if background and quiet:
        picks = np.unique(np.linspace(0, len(quiet) - 1, min(background, len(quiet))).round().astype(int))
        seizure += [quiet[i] for i in picks]
    return seizure[:limit] if limit is not None else seizure


def summarise(results: list[dict], points: list[str]) -> dict:
    """Per comparison: the probability differences and the event agreement at each operating point."""
    summary: dict = {}
    for row, form, against, expected in COMPARISONS:
        rows = [r["comparisons"][row] for r in results if row in r["comparisons"]]
        frames = sum(item["frames"] for item in rows)
        entry = {
            "form": form, "compared_with": against, "expected": expected,
            "recordings": len(rows),
            "failed": sum(form in r["failures"] or against in r["failures"] for r in results),
            "max_abs_difference": max((item["max_abs"] for item in rows), default=float("nan")),
            "mean_abs_difference": sum(item["sum_abs"] for item in rows) / frames if frames else float("nan"),
            "recordings_bit_identical": sum(item["max_abs"] == 0.0 for item in rows),
            "electrodes_present": sorted({item["n_present"] for item in rows}),
            "points": {},
        }
        for key in points:
            counts = [item["points"][key] for item in rows]
            reference_events = sum(c["reference_events"] for c in counts)
            hits = sum(c["hits"] for c in counts)
            entry["points"][key] = {
                "reference_events": reference_events, "hits": hits,
                "fraction_hit": hits / reference_events if reference_events else float("nan"),
                "missed": sum(c["missed"] for c in counts), "added": sum(c["added"] for c in counts),
                "recordings_identical_events": sum(c["identical"] for c in counts),
            }
        summary[row] = entry
    return summary


def markdown(summary: dict, points: list[str]) -> str:
    head = ["form (vs the referential file unless said)", "recordings", "electrodes", "max abs diff",
            "mean abs diff"]
    head += [f"FA{key}: hit / missed / added" for key in points] + ["expected"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, entry in summary.items():
        cells = [row, f"{entry['recordings']}" + (f" ({entry['failed']} failed)" if entry["failed"] else ""),
                 "/".join(map(str, entry["electrodes_present"])),
                 f"{entry['max_abs_difference']:.3g}", f"{entry['mean_abs_difference']:.3g}"]
        for key in points:
            p = entry["points"][key]
            cells.append(f"{p['fraction_hit']:.3f} ({p['hits']}/{p['reference_events']}) / {p['missed']} / {p['added']}")
        cells.append(entry["expected"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params-dir", default=".", help="project root holding params.yaml (default: .)")
    parser.add_argument("--checkpoint", default=None, help="default: <params-dir>/models/best.pt")
    parser.add_argument("--operating-points", default=None,
                        help="default: operating_points.json beside the checkpoint")
    parser.add_argument("--background", type=int, default=10, help="seizure-free recordings added (default 10)")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N recordings (smoke runs)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: this process)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--device", default=None, help="cpu | cuda | auto (default: the profile's)")
    parser.add_argument("--out", default=None, help="write the JSON result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    root = Path(args.params_dir).resolve()
    params = load_params(root)
    checkpoint = Path(args.checkpoint) if args.checkpoint else root / "models" / "best.pt"
    points_path = Path(args.operating_points) if args.operating_points else checkpoint.parent / "operating_points.json"
    frozen = read_operating_points(points_path)
    step = load_checkpoint(checkpoint, expected_config=params.model).step
    check_checkpoint_step(points_path, frozen, step)
    points = dict(frozen["detector"])
    specs = choose_recordings(make_plan(params.synth).split("eval"), args.background, args.limit)
    if not specs:
        raise SzflowError("no eval recordings in the synth plan of " + str(root))
    hours = sum(s.duration_s for s in specs) / 3600
    per_hour = [CPU_S_PER_EEG_HOUR["simulate"] + CPU_S_PER_EEG_HOUR["preprocess"] + x
                for x in CPU_S_PER_EEG_HOUR["inference"]]
    workers = max(1, args.workers)
    print(f"# {len(specs)} recordings, {hours:.1f} h of EEG x {len(FORMS)} files; estimated "
          f"{hours * len(FORMS) * per_hour[0] / 60 / workers:.0f}-{hours * len(FORMS) * per_hour[1] / 60 / workers:.0f} "
          f"min on {workers} worker(s)", flush=True)
    started = time.perf_counter()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="szflow_forms_") as folder:
        jobs = [Job(spec, str(root), str(checkpoint), points, args.device, args.torch_threads, folder)
                for spec in sorted(specs, key=lambda s: -s.duration_s)]

        def done(result: dict) -> None:
            results.append(result)
            print(f"# {len(results)}/{len(jobs)} {result['recording']}"
                  + (f" failures: {result['failures']}" if result["failures"] else ""), flush=True)

        def died(job: Job, reason: str) -> None:
            done({"recording": job.spec.bname, "duration_s": job.spec.duration_s, "comparisons": {},
                  "failures": {REFERENCE_FORM: reason}})

        if args.workers <= 0:
            for job in jobs:
                done(compare_recording(job))
        else:
            run_in_processes(compare_recording, jobs, args.workers, done, died, what="montage equivalence")
    results.sort(key=lambda r: r["recording"])
    summary = summarise(results, list(points))
    report = {"checkpoint": str(checkpoint), "checkpoint_step": step, "operating_points": points,
              "recordings": len(results), "eeg_hours": hours, "seconds": time.perf_counter() - started,
              "comparisons": summary, "per_recording": results}
    print(markdown(summary, list(points)))
    print(f"# {time.perf_counter() - started:.0f} s")
    if args.out:
        atomic_write_json(Path(args.out), report)
    return report


if __name__ == "__main__":
    try:
        main()
    except SzflowError as exc:
        sys.exit(f"error: {exc}")
