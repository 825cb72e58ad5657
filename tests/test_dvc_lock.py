"""The committed dvc.lock records the code and params the committed outputs came from.

A change to a stage's source or params without `dvc repro` (or, where the outputs provably do not
change, `dvc commit`) leaves the lock stale: `dvc repro` in a fresh clone then re-runs stages nobody
asked for, and the lock's hashes no longer say what produced the metrics. Only what git tracks is
checked (code, params); the data a stage reads is absent in a fresh clone and is another stage's
output anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tracked(path: str) -> bool:
    listed = subprocess.run(["git", "ls-files", "--", path], cwd=REPO, capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


def stale_entries(status: dict) -> list[str]:
    """'stage: what changed' for every tracked dependency, param or command that differs from the lock."""
    stale = []
    for stage, items in status.items():
        for item in items:
            if isinstance(item, str):  # "changed command", "always changed"
                stale.append(f"{stage}: {item}")
                continue
            for kind, changes in item.items():
                if kind == "changed outs":
                    continue
                if kind == "changed deps":
                    stale += [f"{stage}: {path} {state}" for path, state in changes.items() if _tracked(path)]
                else:  # changed params: {file: {key: state}}
                    for file, keys in changes.items():
                        stale += [f"{stage}: {file} {key} {state}" for key, state in
                                  (keys.items() if isinstance(keys, dict) else [(keys, "changed")])]
    return stale


def test_stale_entries_reads_dvc_status_shapes():
    status = {
        "eval": [{"changed deps": {"src/szflow/evaluate.py": "modified", "data/cache/eval": "deleted"}},
                 {"changed outs": {"metrics/eval.json": "not in cache"}}],
        "train": [{"changed params": {"params.yaml": {"train.lr": "modified"}}}],
        "plots": ["changed command"],
    }
    assert stale_entries(status) == ["eval: src/szflow/evaluate.py modified",
                                     "train: params.yaml train.lr modified", "plots: changed command"]


def test_dvc_lock_matches_the_tracked_code_and_params():
    result = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], check=False, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    stale = stale_entries(json.loads(result.stdout or "{}"))
    assert not stale, ("dvc.lock is stale for what git tracks; re-run the stages (`dvc repro`), or "
                       "`dvc commit STAGE` where the outputs provably do not change:\n  " + "\n  ".join(stale))
