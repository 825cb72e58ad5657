"""Our NEDC OVLP / TAES against the NEDC EEG Eval v6.0.0 scorer's own results (shared/scoring_vectors).

Every case must match exactly: OVLP targets / hits / misses / false alarms, sensitivity and FA/24h
(to the 4 decimals the scorer prints); TAES counts to its 2 printed decimals, sensitivity and
FA/24h to 4; and the corpus duration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from szflow.scoring import score_folders

# tests/ lives in the clone; shared/ is a sibling of the clone's folder (here /work/main -> /work/shared).
VECTORS = Path(__file__).resolve().parents[2] / "shared" / "scoring_vectors"
CASES = (sorted(p.name for p in VECTORS.iterdir() if (p / "expected.json").is_file())
         if VECTORS.is_dir() else [])

pytestmark = pytest.mark.skipif(not CASES, reason=f"NEDC scoring vectors not found at {VECTORS}")


def test_all_vector_cases_present():
    # 16 single-pair cases plus the corpus of all of them; a lost folder must not pass silently.
    assert len(CASES) >= 17
    assert "all_cases" in CASES


@pytest.mark.parametrize("case", CASES)
def test_vector_matches_nedc(case: str):
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
