"""Score two folders of annotation files: references and hypotheses, paired by recording name."""

from __future__ import annotations

from pathlib import Path

from szflow.data.annotations import read_annotation
from szflow.errors import SzflowError
from szflow.scoring.corpus import score_corpus
from szflow.scoring.events import RecordingEvents

# NEDC scores a pair only when ref and hyp end at the same time (to 1 µs); a pair that does not is
# an error here rather than silently left out of the corpus.
END_TOLERANCE_S = 1e-6
_SUFFIXES = ("_events.tsv", ".csv_bi", ".tsv")
_LISTED = 20


def recording_key(path: Path) -> str | None:
    """The recording name a file belongs to ('x' for x.csv_bi, x_events.tsv, x.tsv), else None."""
    name = path.name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def annotation_files(folder: Path) -> dict[str, Path]:
    """Annotation files under `folder` (searched recursively, as TUSZ nests them), by recording name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SzflowError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    duplicates: list[str] = []
    for path in sorted(folder.rglob("*")):
        # Dot files are editor backups or our own half-written atomic temporaries.
        if path.name.startswith(".") or not path.is_file():
            continue
        key = recording_key(path)
        if key is None:
            continue
        if key in found:
            duplicates.append(f"{found[key]} and {path}")
            continue
        found[key] = path
    if duplicates:
        raise SzflowError(f"{folder}: more than one annotation file for a recording: {_listing(duplicates)}")
    return found


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f", ... ({len(names) - _LISTED} more)" if len(names) > _LISTED else "")


def pair_folders(ref: Path, hyp: Path) -> list[tuple[str, Path, Path]]:
    """(recording, ref file, hyp file) for every recording; unpaired files are an error listing them."""
    ref_files, hyp_files = annotation_files(ref), annotation_files(hyp)
    if not ref_files:
        raise SzflowError(f"{ref}: no .csv_bi or _events.tsv files")
    only_ref = sorted(set(ref_files) - set(hyp_files))
    only_hyp = sorted(set(hyp_files) - set(ref_files))
    if only_ref or only_hyp:
        parts = []
        if only_ref:
            parts.append(f"{len(only_ref)} reference file(s) without a hypothesis in {hyp}: "
                         f"{_listing([ref_files[k].name for k in only_ref])}")
        if only_hyp:
            parts.append(f"{len(only_hyp)} hypothesis file(s) without a reference in {ref}: "
                         f"{_listing([hyp_files[k].name for k in only_hyp])}")
        raise SzflowError("; ".join(parts))
    return [(key, ref_files[key], hyp_files[key]) for key in sorted(ref_files)]


def seizure_events(annotation) -> list[tuple[float, float]]:
    """The seizure events of a file as the scorers count them: each row its own event (two seizure
    rows that touch are two seizures to NEDC), except that rows overlapping in time (one seizure
    marked on several channels) are one event. `Annotation.seizure_intervals` would also merge
    touching rows, which changes the NEDC counts."""
    spans = sorted((e.start, e.stop) for e in annotation.events if e.is_seizure)
    events: list[tuple[float, float]] = []
    for start, stop in spans:
        if events and start < events[-1][1]:
            events[-1] = (events[-1][0], max(events[-1][1], stop))
        else:
            events.append((start, stop))
    return events


def read_folders(ref: Path, hyp: Path) -> list[RecordingEvents]:
    """One `RecordingEvents` per file pair; the reference file's duration is the recording's."""
    recordings: list[RecordingEvents] = []
    mismatched: list[str] = []
    for key, ref_path, hyp_path in pair_folders(Path(ref), Path(hyp)):
        ref_ann, hyp_ann = read_annotation(ref_path), read_annotation(hyp_path)
        if abs(ref_ann.duration_s - hyp_ann.duration_s) > END_TOLERANCE_S:
            mismatched.append(f"{key} (ref {ref_ann.duration_s} s, hyp {hyp_ann.duration_s} s)")
            continue
        recordings.append(RecordingEvents(
            recording_id=key, duration_s=ref_ann.duration_s,
            reference=seizure_events(ref_ann), hypothesis=seizure_events(hyp_ann),
        ))
    if mismatched:
        raise SzflowError(f"{len(mismatched)} file pair(s) whose reference and hypothesis durations differ "
                          f"(NEDC scores a pair only when both end at the same time): {_listing(mismatched)}")
    return recordings


def score_folders(ref: Path, hyp: Path) -> dict:
    """`score_corpus` of two folders of .csv_bi (or SzCORE _events.tsv) files paired by name."""
    return score_corpus(read_folders(Path(ref), Path(hyp)))
