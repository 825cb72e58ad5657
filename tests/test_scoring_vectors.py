"""Our NEDC OVLP / TAES against the NEDC EEG Eval v6.0.0 scorer's own results.

The cases are vendored test data (tests/data/nedc_scoring_vectors, see its PROVENANCE.md).
Every case must match exactly: OVLP targets / hits / misses / false alarms, sensitivity and FA/24h
(to the 4 decimals the scorer prints); TAES counts to its 2 printed decimals, sensitivity and
FA/24h to 4; and the corpus duration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from szflow.scoring import score_folders

VECTORS = Path(__file__).resolve().parent / "data" / "nedc_scoring_vectors"
CASES = (sorted(p.name for p in VECTORS.iterdir() if (p / "expected.json").is_file())
         if VECTORS.is_dir() else [])
# Parametrising over an empty list would report nothing; stand one failing case in for all of them.
MISSING = "<no NEDC scoring vectors>"


def test_all_vector_cases_present():
    # 16 single-pair cases plus the corpus of all of them; a lost folder must not pass silently.
    assert CASES, f"NEDC scoring vectors not found: {VECTORS} is missing or holds no case with expected.json"
    assert len(CASES) >= 17, f"only {len(CASES)} cases in {VECTORS}: {CASES}"
    assert "all_cases" in CASES


@pytest.mark.parametrize("case", CASES or [MISSING])
def test_vector_matches_nedc(case: str):
    assert case != MISSING, f"NEDC scoring vectors not found: {VECTORS} is missing or holds no case"
    folder = VECTORS / case
    expected = json.loads((folder / "expected.json").read_text())
    result = score_folders(folder / "ref", folder / "hyp")

    assert result["duration_s"] == pytest.approx(expected["duration_s"], abs=1e-9)

    ovlp, want = result["ovlp"], expected["ovlp"]
    assert ovlp["targets"] == want["targets"]
    assert ovlp["tp"] == want["tp"]
    assert ovlp["fn"] == want["fn"]
    assert ovlp["fp"] == want["fp"]
    assert round(100 * ovlp["sensitivity"], 4) == want["sensitivity_percent"]
    assert round(ovlp["fa_per_24h"], 4) == want["fa_per_24h"]

    taes, want = result["taes"], expected["taes"]
    assert taes["targets"] == want["targets"]
    assert round(taes["tp"], 2) == want["tp"]
    assert round(taes["fn"], 2) == want["fn"]
    assert round(taes["fp"], 2) == want["fp"]
    assert round(100 * taes["sensitivity"], 4) == want["sensitivity_percent"]
    assert round(taes["fa_per_24h"], 4) == want["fa_per_24h"]
