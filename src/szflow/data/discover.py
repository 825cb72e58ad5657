"""Find the recordings of a TUSZ tree or a SzCORE BIDS tree: one table row per recording."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from szflow.config import SPLITS
from szflow.errors import InputFileError

COLUMNS = ["recording_id", "split", "patient", "session", "montage", "edf_path", "annotation_path",
           "types_path", "format"]
BIDS_MONTAGE = "bids"
BIDS_NO_SPLIT = "eval"
NOTHING_FOUND = "no TUSZ (edf/{train,dev,eval}) or BIDS (sub-*/ses-*/eeg) recordings found"
_TUSZ_SUFFIXES = {".edf": "edf", ".csv_bi": "csv_bi", ".csv": "csv"}
_MONTAGE_FOLDER = re.compile(r"^\d\d_tcp")

Source = Literal["auto", "tusz", "bids", "synthetic"]


def _files_below(folder: Path) -> list[Path]:
    """Every file under `folder`; os.walk is several times faster than rglob on corpus-sized trees."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath, name) for name in filenames if not name.startswith("."))
    return found


def _tusz_split_roots(root: Path) -> dict[str, Path]:
    """The split folders of a TUSZ tree, whether `root` is the corpus folder or holds the splits."""
    for base in (root / "edf", root):
        splits = {s: base / s for s in SPLITS if (base / s).is_dir()}
        # A BIDS tree with split folders also has train/dev/eval; its splits hold sub-* folders.
        if splits and not any(any(p.glob("sub-*")) for p in splits.values()):
            return splits
    return {}


def _tusz_rows(root: Path) -> list[dict]:
    rows: list[dict] = []
    for split, split_root in _tusz_split_roots(root).items():
        # Group the .edf / .csv_bi / .csv of one recording by folder and stem.
        groups: dict[tuple[Path, str], dict[str, Path]] = {}
        for path in _files_below(split_root):
            kind = _TUSZ_SUFFIXES.get(path.suffix.lower())
            if kind is not None:
                groups.setdefault((path.parent, path.stem), {})[kind] = path
        for (folder, stem), files in groups.items():
            if "edf" not in files and "csv_bi" not in files:
                continue  # a lone .csv is a stray types file, not a recording
            parts = folder.relative_to(split_root).parts
            stem_parts = stem.split("_")
            if len(parts) == 3:
                patient, session_folder, montage = parts
                session = session_folder.split("_")[0]
            else:
                # Off-layout files still count; take what the TUSZ file name says.
                patient = stem_parts[0]
                session = stem_parts[1] if len(stem_parts) > 2 else ""
                montage = folder.name if _MONTAGE_FOLDER.match(folder.name) else "unknown"
            annotation = files.get("csv_bi")
            types = files.get("csv")
            rows.append({
                "recording_id": stem,
                "split": split,
                "patient": patient,
                "session": session,
                "montage": montage,
                "edf_path": str(files.get("edf", folder / f"{stem}.edf")),
                "annotation_path": str(annotation) if annotation else None,
                "types_path": str(types) if types else None,
                "format": "tusz",
            })
    return rows


def _bids_split_roots(root: Path) -> dict[str, Path]:
    splits = {s: root / s for s in SPLITS if (root / s).is_dir() and any((root / s).glob("sub-*"))}
    if splits:
        return splits
    return {BIDS_NO_SPLIT: root} if any(root.glob("sub-*")) else {}


def _bids_rows(root: Path) -> list[dict]:
    rows: list[dict] = []
    for split, split_root in _bids_split_roots(root).items():
        recordings: dict[tuple[Path, str], dict[str, Path]] = {}
        for subject in sorted(p for p in split_root.glob("sub-*") if p.is_dir()):
            for path in _files_below(subject):
                if path.parent.name != "eeg":
                    continue
                name = path.name
                if name.endswith("_eeg.edf"):
                    recordings.setdefault((path.parent, name[: -len("_eeg.edf")]), {})["edf"] = path
                elif name.endswith("_events.tsv"):
                    recordings.setdefault((path.parent, name[: -len("_events.tsv")]), {})["tsv"] = path
        for (folder, recording_id), files in recordings.items():
            entities = dict(part.split("-", 1) for part in recording_id.split("_") if "-" in part)
            annotation = files.get("tsv")
            rows.append({
                "recording_id": recording_id,
                "split": split,
                "patient": f"sub-{entities['sub']}" if "sub" in entities else folder.parent.parent.name,
                "session": f"ses-{entities['ses']}" if "ses" in entities else "",
                "montage": BIDS_MONTAGE,
                "edf_path": str(files.get("edf", folder / f"{recording_id}_eeg.edf")),
                "annotation_path": str(annotation) if annotation else None,
                "types_path": None,
                "format": "bids",
            })
    return rows


def discover_corpus(root: str | Path, source: Source = "auto") -> pd.DataFrame:
    """One row per recording (columns `COLUMNS`), sorted by (split, recording_id).

    A recording is listed when its EDF or its annotation exists, so a missing file shows up as a
    row with a path that does not exist (EDF) or None (annotation), for the caller to report.
    """
    root = Path(root)
    if source not in ("auto", "tusz", "bids", "synthetic"):
        raise ValueError(f"unknown corpus source {source!r}")
    if not root.is_dir():
        raise InputFileError(root, "corpus folder does not exist")
    rows: list[dict] = []
    if source in ("auto", "tusz", "synthetic"):
        rows = _tusz_rows(root)
    if not rows and source in ("auto", "bids"):
        rows = _bids_rows(root)
    if not rows:
        raise InputFileError(root, NOTHING_FOUND)
    # object dtype keeps a missing annotation as None; pandas 3's string dtype would make it NaN.
    table = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
    return table.sort_values(["split", "recording_id"], kind="stable").reset_index(drop=True)
