"""The validation split: whole patients carved out of the train split, deterministic from a seed.

By patient, never by recording or window: two recordings of one patient look alike, so a
recording-level split would leak and overstate validation scores. Patients are drawn separately
from those with and without seizures so that validation (and training) hold seizures whenever the
split has at least two seizure patients; otherwise sensitivity on validation is undefined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from szflow.errors import SzflowError


@dataclass(frozen=True)
class ValidationSplit:
    train_patients: list[str]
    val_patients: list[str]
    train_recordings: list[str]
    val_recordings: list[str]


def seizure_intervals(value: object) -> list[tuple[float, float]]:
    """Seizure intervals of one index row, whether stored as a list/array of pairs or as JSON text."""
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    pairs = np.asarray(value, dtype=np.float64).reshape(-1, 2) if len(value) else np.zeros((0, 2))
    return [(float(a), float(b)) for a, b in pairs]


def _take(patients: list[str], count: int, rng: np.random.Generator) -> list[str]:
    order = rng.permutation(len(patients))
    return [patients[i] for i in order[:count]]


def split_by_patient(index: pd.DataFrame, val_fraction: float, val_seed: int) -> ValidationSplit:
    """Split the recordings of `index` (columns recording_id, patient, seizure_intervals) by patient.

    round(val_fraction x patients) patients (at least one, and at least one left for training) go to
    validation, the seizure/no-seizure mix kept close to the split's. Patients are sorted before the
    seeded draw, so the result depends only on the set of patients and the seed.
    """
    if not 0 < val_fraction < 1:
        raise SzflowError(f"train.val_fraction must be in (0, 1), got {val_fraction}")
    patients = sorted(str(p) for p in index["patient"].unique())
    if len(patients) < 2:
        raise SzflowError(
            f"the train split has {len(patients)} patient(s); a validation split by patient needs at least 2"
        )
    has_seizure = {
        str(patient): any(len(seizure_intervals(v)) > 0 for v in group["seizure_intervals"])
        for patient, group in index.groupby(index["patient"].astype(str), sort=True)
    }
    with_sz = [p for p in patients if has_seizure[p]]
    without_sz = [p for p in patients if not has_seizure[p]]
    n_val = min(len(patients) - 1, max(1, round(val_fraction * len(patients))))
    # Seizure patients in validation: proportional share, but at least one, and leave one for training.
    n_val_sz = round(n_val * len(with_sz) / len(patients))
    if len(with_sz) >= 2:
        n_val_sz = min(max(1, n_val_sz), len(with_sz) - 1)
    else:
        n_val_sz = 0
    n_val_sz = min(n_val_sz, n_val)
    n_val_bg = min(n_val - n_val_sz, len(without_sz))
    # Too few seizure-free patients: fill validation up with seizure patients instead.
    n_val_sz = min(len(with_sz), n_val - n_val_bg)
    rng = np.random.default_rng(val_seed)
    val = set(_take(with_sz, n_val_sz, rng)) | set(_take(without_sz, n_val_bg, rng))
    train_patients = [p for p in patients if p not in val]
    val_patients = [p for p in patients if p in val]
    patient_of = index["patient"].astype(str)
    ids = index["recording_id"].astype(str)
    return ValidationSplit(
        train_patients=train_patients,
        val_patients=val_patients,
        train_recordings=sorted(ids[~patient_of.isin(val)].tolist()),
        val_recordings=sorted(ids[patient_of.isin(val)].tolist()),
    )
