"""Plots of dev and eval results: data files for `dvc plots show` and matplotlib PNGs of the same.

`write_plots(out_dir, png_dir, ...)` writes, from tracks, operating points and metrics it is given
(the `plots` stage driver, `szflow.stages.plots`, reads them), one data file per curve because DVC's
templates draw one line per file:
  <out_dir>/froc_<split>_<detector>.csv              sensitivity vs FA/24h per threshold (OVLP)
  <out_dir>/operating_points_<split>_<detector>.csv  the frozen (dev-tuned) operating points, scored
  <out_dir>/roc_eval_<detector>.csv, <out_dir>/pr_eval_<detector>.csv   frame-level ROC and PR on eval
PNGs in <png_dir>: froc, roc, pr, training curves, and timelines of a few eval recordings.
<out_dir>/dvc_plots_template.html: an HTML template for `dvc plots show --html-template` with Vega,
Vega-Lite and Vega-Embed inlined (DVC's own page loads them from a CDN, so without network its
charts stay blank).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from szflow.io_utils import atomic_path, atomic_write_text
from szflow.postprocess import events_of_track
from szflow.scoring import pr_curve, roc_curve, sweep_thresholds

FROC_THRESHOLDS = np.round(np.linspace(0.02, 0.98, 49), 2)
SPLITS = ("dev", "eval")
DETECTORS = ("network", "baseline")


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["empty"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def froc_rows(tracks: dict, points: dict) -> list[dict]:
    """A threshold sweep with the post-processing of the loosest operating point held fixed."""
    rows = []
    for (split, detector), split_tracks in tracks.items():
        settings = points["detector" if detector == "network" else "baseline"]
        loosest = settings[max(settings, key=float)]
        for row in sweep_thresholds(split_tracks, FROC_THRESHOLDS, loosest):
            rows.append({"split": split, "detector": detector, "curve": f"{split} {detector}",
                         "threshold": round(float(row["threshold"]), 4),
                         "fa_per_24h": round(float(row["fa_per_24h"]), 4),
                         "sensitivity": round(float(row["sensitivity"]), 4)})
    return rows


def operating_point_rows(metrics: dict[str, dict]) -> list[dict]:
    """The scored operating points of `metrics` ({split: that split's metrics JSON})."""
    rows = []
    for split in SPLITS:
        for detector, block in (("network", metrics[split]), ("baseline", metrics[split]["baseline"])):
            for key, scores in block["operating_points"].items():
                ovlp = scores["ovlp"]
                fa_lo, fa_hi = ovlp.get("fa_per_24h_interval") or (None, None)
                sens_lo, sens_hi = ovlp.get("sensitivity_interval") or (None, None)
                rows.append({"split": split, "detector": detector, "curve": f"{split} {detector}",
                             "target_fa_per_24h": key,
                             "certified": bool(scores.get("certification", {}).get("certified", False)),
                             "fa_per_24h": round(ovlp["fa_per_24h"], 4),
                             "sensitivity": round(ovlp["sensitivity"], 4),
                             # 95 % intervals (szflow.scoring.intervals): exact Poisson, patient bootstrap.
                             "fa_per_24h_low": _round_or_none(fa_lo), "fa_per_24h_high": _round_or_none(fa_hi),
                             "sensitivity_low": _round_or_none(sens_lo),
                             "sensitivity_high": _round_or_none(sens_hi)})
    return rows


def _round_or_none(value) -> float | None:
    return None if value is None else round(float(value), 4)


def curve_rows(tracks: dict) -> tuple[list[dict], list[dict]]:
    roc, pr = [], []
    for detector in DETECTORS:
        split_tracks = tracks[("eval", detector)]
        fpr, tpr = roc_curve(split_tracks)[:2]
        precision, recall = pr_curve(split_tracks)[:2]
        for x, y in _thin(fpr, tpr):
            roc.append({"detector": detector, "false_positive_rate": x, "true_positive_rate": y})
        for x, y in _thin(recall, precision):
            pr.append({"detector": detector, "recall": x, "precision": y})
    return roc, pr


def _thin(x: np.ndarray, y: np.ndarray, points: int = 200) -> list[tuple[float, float]]:
    """At most `points` points of a curve, so the HTML stays small; ends kept."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) > points:
        keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[keep], y[keep]
    return [(round(float(a), 5), round(float(b), 5)) for a, b in zip(x, y)]


def _save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _error_bars(ax, marks: list[dict]) -> None:
    """95 % intervals of the operating points: FA/24h (exact Poisson) across, sensitivity (patient
    bootstrap) up and down."""
    for r in marks:
        x, y = r["fa_per_24h"], r["sensitivity"]
        xerr = None if r.get("fa_per_24h_low") is None else [[x - r["fa_per_24h_low"]], [r["fa_per_24h_high"] - x]]
        yerr = None if r.get("sensitivity_low") is None else [[y - r["sensitivity_low"]],
                                                               [r["sensitivity_high"] - y]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", ecolor="0.4", elinewidth=0.8, capsize=2,
                    zorder=2)


def _png_froc(froc: list[dict], ops: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    # Constrained layout keeps the two titles and the tick labels from running into each other.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, layout="constrained")
    for ax, split in zip(axes, SPLITS):
        for detector, style in (("network", "-"), ("baseline", "--")):
            # Threshold order (high to low): the curve a user walks by lowering the threshold.
            rows = sorted((r for r in froc if r["split"] == split and r["detector"] == detector),
                          key=lambda r: -r["threshold"])
            ax.plot([r["fa_per_24h"] for r in rows], [r["sensitivity"] for r in rows], style,
                    marker=".", label=detector)
            marks = [r for r in ops if r["split"] == split and r["detector"] == detector]
            _error_bars(ax, marks)
            ax.scatter([r["fa_per_24h"] for r in marks], [r["sensitivity"] for r in marks], s=60,
                       marker="o" if detector == "network" else "s", edgecolor="k", zorder=3,
                       label=f"{detector} operating points")
            # Operating points that land on the same spot share one label ("10/5").
            labels: dict[tuple[float, float], list[str]] = {}
            for r in marks:
                # An asterisk: dev could not certify the point (docs/metrics.md).
                name = str(r["target_fa_per_24h"]) + ("" if r.get("certified", True) else "*")
                labels.setdefault((r["fa_per_24h"], r["sensitivity"]), []).append(name)
            for (x, y), names in labels.items():
                ax.annotate("/".join(names), (x, y), textcoords="offset points", xytext=(5, -11), fontsize=8)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(f"FROC on {split}")
        ax.set_xlabel("false alarms per 24 h")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("sensitivity")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle("OVLP sensitivity against false alarms; bars: 95 % intervals; *: operating point not certified",
                 fontsize=10)
    _save_png(fig, path)


def _png_curves(roc: list[dict], pr: list[dict], path_roc: Path, path_pr: Path) -> None:
    import matplotlib.pyplot as plt

    for rows, xkey, ykey, title, path in (
        (roc, "false_positive_rate", "true_positive_rate", "Frame ROC on eval", path_roc),
        (pr, "recall", "precision", "Frame precision-recall on eval", path_pr),
    ):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for detector in DETECTORS:
            sel = [r for r in rows if r["detector"] == detector]
            ax.plot([r[xkey] for r in sel], [r[ykey] for r in sel], label=detector)
        if xkey == "false_positive_rate":
            ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_xlabel(xkey.replace("_", " "))
        ax.set_ylabel(ykey.replace("_", " "))
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        _save_png(fig, path)


def _read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _png_training(files: list[Path], path: Path) -> None:
    import matplotlib.pyplot as plt

    if not files:
        return
    columns = min(3, len(files))
    rows_n = (len(files) + columns - 1) // columns
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.2 * columns, 3.2 * rows_n), squeeze=False,
                             layout="constrained")
    for ax, file in zip(axes.flat, files):
        rows = _read_tsv(file)
        name = file.stem
        value_key = next(k for k in rows[0] if k not in ("step", "timestamp")) if rows else name
        ax.plot([float(r["step"]) for r in rows], [float(r[value_key]) for r in rows], marker=".")
        ax.set_title(str(file.relative_to(file.parents[1])).removesuffix(".tsv"), fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(files):]:
        ax.axis("off")
    fig.suptitle("Training")
    _save_png(fig, path)


def timeline_tracks(tracks: list, count: int) -> list:
    """The eval recordings drawn as timelines (and first in the review page): recordings with
    seizures first (the interesting ones), then the rest, in a stable order."""
    return sorted(tracks, key=lambda t: (not t.reference, t.recording_id))[:count]


def _png_timelines(tracks: dict, points: dict, count: int, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    network = tracks[("eval", "network")]
    settings = points["detector"]
    key = max(settings, key=float)
    point = settings[key]
    chosen = timeline_tracks(network, count)
    written = []
    for track in chosen:
        times = np.arange(len(track.probabilities)) / track.frame_rate_hz
        hyp = events_of_track(track, point)
        fig, ax = plt.subplots(figsize=(11, 3))
        ax.plot(times, track.probabilities, lw=0.8, color="tab:blue", label="seizure probability")
        ax.axhline(point["threshold"], color="tab:red", ls="--", lw=1, label=f"threshold (op {key} FA/24h)")
        for i, (start, stop) in enumerate(track.reference):
            ax.axvspan(start, stop, ymin=0.0, ymax=1.0, color="tab:green", alpha=0.18,
                       label="reference seizure" if i == 0 else None)
        for i, (start, stop) in enumerate(hyp):
            ax.plot([start, stop], [1.05, 1.05], color="tab:orange", lw=6, solid_capstyle="butt",
                    label="predicted event" if i == 0 else None)
        ax.set_ylim(-0.02, 1.12)
        ax.set_xlim(0, track.duration_s)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("p(seizure)")
        ax.set_title(f"eval recording {track.recording_id}")
        # Below the axes: inside, the legend would hide the predicted-event bars drawn at the top.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, ncol=4, frameon=False)
        path = out_dir / f"timeline_{track.recording_id}.png"
        _save_png(fig, path)
        written.append(path)
    return written


OFFLINE_TEMPLATE_NAME = "dvc_plots_template.html"
# DVC fills {plot_divs} (and {refresh_tag}); its {scripts} placeholder, the CDN <script> tags, is
# left out on purpose: the libraries are inlined instead.
_OFFLINE_PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>szflow plots</title>
    <script>
__BUNDLE__
    </script>
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def offline_template() -> str:
    """An HTML template for `dvc plots show --html-template` that renders without network.

    The JavaScript bundle (Vega-Embed, Vega-Lite, Vega; ~0.9 MB) comes from `vl-convert-python`,
    which builds it from the libraries it ships.
    """
    import vl_convert

    bundle = vl_convert.javascript_bundle()
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in bundle:  # DVC would substitute inside the script
            raise RuntimeError(f"the Vega bundle contains DVC's placeholder {placeholder}")
    return _OFFLINE_PAGE.replace("__BUNDLE__", bundle)


def write_plots(out_dir: Path, png_dir: Path, tracks: dict, points: dict, metrics: dict[str, dict],
                curve_files: list[Path], timeline_recordings: int) -> list[Path]:
    """Every data file, PNG and the offline template; returns the timeline PNGs.

    `tracks`: {(split, "network" | "baseline"): probability tracks} for dev and eval; `points`: the
    operating points file; `metrics`: {split: metrics JSON}; `curve_files`: DVCLive's .tsv tables of
    the training curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    froc = froc_rows(tracks, points)
    ops = operating_point_rows(metrics)
    roc, pr = curve_rows(tracks)
    # One file per curve: DVC's templates draw one line per file, not per column value.
    for name, rows in (("froc", froc), ("operating_points", ops)):
        for split in SPLITS:
            for detector in DETECTORS:
                sel = [r for r in rows if r["split"] == split and r["detector"] == detector]
                atomic_write_text(out_dir / f"{name}_{split}_{detector}.csv", _csv_text(sel))
    for name, rows in (("roc", roc), ("pr", pr)):
        for detector in DETECTORS:
            sel = [r for r in rows if r["detector"] == detector]
            atomic_write_text(out_dir / f"{name}_eval_{detector}.csv", _csv_text(sel))
    _png_froc(froc, ops, png_dir / "froc.png")
    _png_curves(roc, pr, png_dir / "roc.png", png_dir / "pr.png")
    _png_training(curve_files, png_dir / "training.png")
    timelines = _png_timelines(tracks, points, timeline_recordings, png_dir)
    atomic_write_text(out_dir / OFFLINE_TEMPLATE_NAME, offline_template())
    return timelines
