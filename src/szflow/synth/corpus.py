"""`generate_corpus`: plan the corpus, simulate and write each recording, break the chosen few."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from szflow.config import SPLITS, SynthConfig
from szflow.errors import SzflowError
from szflow.io_utils import atomic_write_json
from szflow.synth import broken
from szflow.synth.plan import CorpusPlan, RecordingSpec, make_plan
from szflow.synth.recording import SimulatedRecording, simulate
from szflow.synth.variants import REFERENTIAL, written_signals
from szflow.synth.writer import write_annotations, write_edf

MARKER = "synth.json"
BROKEN_LIST = "broken_files.json"


def _prepare(out: Path) -> None:
    """Clear a previous synthetic corpus in `out`; refuse to touch an `edf/` tree we did not write."""
    edf = out / "edf"
    if edf.exists():
        if not (out / MARKER).exists():
            raise SzflowError(f"{out}: holds an edf/ tree without {MARKER}; not a synthetic corpus "
                              "written by szflow, so it is left alone (choose another folder)")
        shutil.rmtree(edf)
        for name in (MARKER, BROKEN_LIST):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def write_recording(edf_path: str | Path, spec: RecordingSpec) -> SimulatedRecording:
    """Simulate `spec` and write it at `edf_path` in its form (spec.variant), with its `.csv_bi` and
    `.csv`. The same spec with another `variant` (dataclasses.replace) writes the same recording in
    another form: e.g. referential and CHB-MIT bipolar, to compare what a detector makes of both."""
    recording = simulate(spec)
    specs, values = written_signals(spec.variant, spec.montage, spec.signals, recording.signals,
                                    recording.extra_sites)
    write_edf(edf_path, spec, values, signal_specs=specs)
    write_annotations(edf_path, recording.annotation_bi(), recording.annotation_types())
    return recording


def write_planned_recording(out: Path, spec: RecordingSpec) -> dict | None:
    """Write one recording of the plan under the corpus root `out` with its annotations, and damage it
    if the plan says so (returns what was done): what `generate_corpus` does per recording."""
    edf_path = out / spec.relpath
    recording = write_recording(edf_path, spec)
    bi, types = recording.annotation_bi(), recording.annotation_types()
    if spec.broken is None:
        return None
    rng = np.random.default_rng(spec.stream(2))
    if spec.broken == "duration_mismatch":
        bi, reason = broken.stretch_annotation(bi, rng)
        types = dataclasses.replace(types, duration_s=bi.duration_s)
        write_annotations(edf_path, bi, types)
    else:
        if spec.broken == "truncated":
            reason = broken.truncate(edf_path, rng)
        else:
            reason = broken.corrupt_header(edf_path, rng, variant=spec.split_position)
    return {"path": spec.relpath, "split": spec.split, "kind": spec.broken, "reason": reason}


def summarise(plan: CorpusPlan, broken_files: list[dict]) -> dict:
    summary: dict = {"seed": plan.seed, "recordings": {}, "patients": {}, "hours": {},
                     "seizure_recordings": {}, "seizures": {}, "background_recordings": {},
                     "background_hours": {}, "variants": {}}
    for split in SPLITS:
        specs = plan.split(split)
        summary["recordings"][split] = len(specs)
        summary["patients"][split] = len({s.subject for s in specs})
        summary["hours"][split] = round(sum(s.recorded_s for s in specs) / 3600.0, 3)
        background = [s for s in specs if s.background]
        summary["background_recordings"][split] = len(background)
        summary["background_hours"][split] = round(sum(s.recorded_s for s in background) / 3600.0, 3)
        summary["variants"][split] = dict(sorted(Counter(s.variant.kind for s in specs
                                                         if s.variant.kind != REFERENTIAL).items()))
        summary["seizure_recordings"][split] = sum(1 for s in specs if s.seizures)
        summary["seizures"][split] = sum(len(s.seizures) for s in specs)
    summary["seizure_types"] = dict(sorted(Counter(z.label for s in plan.recordings for z in s.seizures).items()))
    summary["sample_rates"] = {str(int(k)): v for k, v in sorted(Counter(s.rate for s in plan.recordings).items())}
    summary["montages"] = dict(sorted(Counter(s.montage for s in plan.recordings).items()))
    summary["broken_files"] = broken_files
    return summary


def generate_corpus(out: str | Path, config: SynthConfig, progress: bool = True,
                    splits: tuple[str, ...] = SPLITS) -> dict:
    """Write a synthetic TUSZ-layout corpus under `out` (edf/{train,dev,eval}/...); return a summary.

    The same config gives the same bytes. `out/broken_files.json` lists the deliberately broken
    files with their reasons; `out/synth.json` holds the config and the summary. `splits` writes
    only those splits (each exactly as the whole corpus would hold it; the summary covers them).
    """
    out = Path(out)
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise SzflowError(f"unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
    plan = make_plan(config)
    plan.recordings = [spec for spec in plan.recordings if spec.split in splits]
    _prepare(out)
    broken_files: list[dict] = []
    for spec in tqdm(plan.recordings, desc="synth", unit="rec", disable=not progress):
        record = write_planned_recording(out, spec)
        if record is not None:
            broken_files.append(record)
    atomic_write_json(out / BROKEN_LIST, {"files": broken_files})
    summary = summarise(plan, broken_files)
    atomic_write_json(out / MARKER, {"config": config.model_dump(mode="json"), "summary": summary})
    return summary
