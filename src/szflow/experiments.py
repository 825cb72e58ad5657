"""The experiments table of `szflow runs`: what `dvc exp show --json` prints, reduced to the params
people change between runs and the headline metrics (szflow.evaluate.headline), one line per
experiment, narrow enough for a 120-column terminal.

`dvc exp show` itself shows every key of params.yaml and the hash of every dependency path, and
DVC has no setting for its default columns (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# (dotted key in params.yaml, column title): the params people change between runs.
RUN_PARAMS = (("hw", "hw"), ("model.d_model", "d_model"),
              ("model.n_layers", "layers"), ("train.lr", "lr"), ("train.max_steps", "steps"))
MISSING = "-"
LEGEND = ("@<target>: eval OVLP sensitivity (pooled) / false alarms per 24 h at the operating point for\n"
          "<target> FA/24h, * where dev certified it. f1_subj: SzCORE event F1, subject mean; base: the\n"
          "baseline's sensitivity (both at the loosest point). Intervals: metrics/detail/<split>.json.")


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _file_data(data: dict | None, kind: str, path: str) -> dict:
    return ((data or {}).get(kind) or {}).get(path, {}).get("data") or {}


def _cell(value: Any, digits: int = 3) -> str:
    """A param as the table prints it: floats rounded to `digits` decimals (a learning rate keeps its own)."""
    if value is None:
        return MISSING
    if isinstance(value, float) and abs(value) >= 10.0 ** -digits:
        return f"{round(value, digits):g}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _metric(value: Any, digits: int = 3) -> str:
    """A metric with exactly `digits` decimals, so 0.7997 reads 0.800 and not 0.8 beside 0.842."""
    return MISSING if value is None else f"{float(value):.{digits}f}"


def _states(exp_show: list[dict]) -> Iterator[tuple[str, dict | None]]:
    """(row name, data) for the workspace, each baseline commit and its experiments, in DVC's order."""
    for baseline in exp_show:
        rev = baseline["rev"]
        yield baseline.get("name") or (rev if rev == "workspace" else rev[:7]), baseline.get("data")
        for exp_range in baseline.get("experiments") or []:
            for state in exp_range.get("revs") or []:
                yield f"  {state.get('name') or state['rev'][:7]}", state.get("data")


def _targets(exp_show: list[dict]) -> list[str]:
    """The operating points' keys (`fa10`, `fa5`, ...), loosest target first."""
    targets: set[str] = set()
    for _, data in _states(exp_show):
        scores = _file_data(data, "metrics", "metrics/eval.json").get("eval") or {}
        targets |= {key for key, value in scores.items() if isinstance(value, dict)}
    return sorted(targets, key=lambda key: -float(key.removeprefix("fa")))


def runs_table(exp_show: list[dict]) -> str:
    """The table for `dvc exp show --json` output: a header, one line per experiment, the legend."""
    targets = _targets(exp_show)
    header = ["experiment", *(title for _, title in RUN_PARAMS), "auroc",
              *(f"@{key.removeprefix('fa')}" for key in targets), "f1_subj", "base"]
    rows = [header]
    for name, data in _states(exp_show):
        params = _file_data(data, "params", "params.yaml")
        scores = _file_data(data, "metrics", "metrics/eval.json").get("eval") or {}
        certified = _file_data(data, "metrics", "metrics/dev.json").get("dev") or {}
        row = [name, *(_cell(_get(params, key)) for key, _ in RUN_PARAMS), _metric(scores.get("auroc"))]
        for key in targets:
            point = scores.get(key) or {}
            sens, fa = point.get("sens_pooled"), point.get("fa_24h")
            mark = "*" if certified.get(f"{key}_certified") else ""
            row.append(MISSING if sens is None and fa is None else f"{_metric(sens)}/{_metric(fa, 1)}{mark}")
        first = next(iter(targets), "")
        row += [_metric(scores.get(f"szcore_f1_subject_mean_{first}")),
                _metric(scores.get(f"baseline_sens_pooled_{first}"))]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join([*lines, "", LEGEND])
