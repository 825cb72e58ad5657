"""Draw docs/img/synthetic_seizure_onset.png: a synthetic focal seizure onset among background.

Usage: python docs/make_synth_figure.py [--seed 0] [--out docs/img/synthetic_seizure_onset.png]

The recording is simulated in memory (no corpus needed), shown as a clinical viewer would:
19 electrodes, common average reference, 0.5-70 Hz band-pass, 60 Hz notch, stacked traces.
Left: the focal seizure onset (onset line), right: a later stretch of the same seizure, and the
seizure-free stretch before it serves as the background reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.signal import butter, iirnotch, sosfiltfilt, tf2sos

from szflow.config import SynthConfig
from szflow.data.edf import ELECTRODES, electrode_name
from szflow.synth import make_plan, simulate

# Display order: left temporal chain, left parasagittal, midline, right parasagittal, right temporal.
ORDER = ("FP1", "F7", "T3", "T5", "O1", "F3", "C3", "P3", "FZ", "CZ", "PZ", "F4", "C4", "P4",
         "FP2", "F8", "T4", "T6", "O2")


def pick_recording(seed: int):
    """A 250 Hz recording whose first seizure is focal, 30 s in or later, and spreads widely.

    A first seizure, so the stretch before it is plain background (not post-ictal); a temporal
    onset preferred, as in most focal epilepsies.
    """
    config = SynthConfig(seed=seed, patients={"train": 40, "dev": 0, "eval": 0}, recordings_per_patient=1,
                         min_duration_s=240, max_duration_s=300, seizure_recording_fraction=1.0,
                         broken_files=0)
    found = [(spec, spec.seizures[0]) for spec in make_plan(config).recordings
             if spec.rate == 250 and spec.seizures and spec.seizures[0].kind == "focal"
             and spec.seizures[0].start >= 30 and spec.seizures[0].duration >= 40]
    spreading = [pair for pair in found if pair[1].lambda_max > 1.0]
    temporal = [pair for pair in spreading if pair[1].focus in ("F7", "F8", "T3", "T4", "T5", "T6")]
    for candidates in (temporal, spreading, found):
        if candidates:
            return candidates[0]
    raise SystemExit("no suitable focal seizure in this plan; try another --seed")


def clinical_view(signals: dict[str, np.ndarray], fs: float) -> dict[str, np.ndarray]:
    stack = np.stack([signals[e] for e in ELECTRODES]).astype(np.float64)
    stack -= stack.mean(axis=0, keepdims=True)
    band = butter(4, [0.5, 70.0], btype="bandpass", fs=fs, output="sos")
    notch = tf2sos(*iirnotch(60.0, 30.0, fs=fs))
    stack = sosfiltfilt(notch, sosfiltfilt(band, stack, axis=1), axis=1)
    return dict(zip(ELECTRODES, stack))


def draw(ax, view: dict[str, np.ndarray], fs: float, t0: float, t1: float, onset: float | None,
         title: str, spacing: float) -> None:
    a, b = int(t0 * fs), int(t1 * fs)
    t = np.arange(a, b) / fs
    for row, name in enumerate(ORDER):
        ax.plot(t, view[name][a:b] - row * spacing, lw=0.5, color="black")
    ax.set_yticks([-row * spacing for row in range(len(ORDER))], ORDER, fontsize=7)
    ax.set_xlim(t0, t1)
    ax.set_ylim(-(len(ORDER) - 0.3) * spacing, 0.9 * spacing)
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9)
    if onset is not None:
        ax.axvline(onset, color="tab:red", lw=1.0)
        ax.text(onset, 0.95 * spacing, " onset", color="tab:red", fontsize=8, va="top")
    # Scale bar: 100 uV, 1 s.
    x = t1 - 1.6
    y = -(len(ORDER) - 1.6) * spacing
    ax.plot([x, x], [y, y + 100], color="tab:blue", lw=1.5)
    ax.plot([x, x + 1], [y, y], color="tab:blue", lw=1.5)
    ax.text(x + 0.1, y + 50, "100 µV", color="tab:blue", fontsize=7)
    ax.text(x + 0.1, y - 0.25 * spacing, "1 s", color="tab:blue", fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img" / "synthetic_seizure_onset.png")
    args = parser.parse_args()

    spec, seizure = pick_recording(args.seed)
    recording = simulate(spec)
    signals = {electrode_name(s.label): x for s, x in zip(spec.signals, recording.signals)
               if electrode_name(s.label) is not None}
    view = clinical_view(signals, spec.rate)
    spacing = 120.0
    fig, axes = plt.subplots(1, 2, figsize=(15, 8), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    onset = seizure.start
    draw(axes[0], view, spec.rate, onset - 15.0, onset + 15.0, onset,
         f"{spec.bname}: background, then {seizure.label} onset at {seizure.focus} "
         f"({seizure.f_start:.1f} Hz rhythm)", spacing)
    late = min(seizure.start + 0.7 * seizure.duration, seizure.stop - 12.0)
    draw(axes[1], view, spec.rate, late, late + 10.0, None,
         f"{late - onset:.0f} s later: slower rhythm (towards {seizure.f_end:.1f} Hz), spreading field", spacing)
    fig.suptitle("Synthetic EEG (szflow synth): common average reference, 0.5-70 Hz, 60 Hz notch",
                 fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({spec.relpath}, seizure {seizure.start:.1f}-{seizure.stop:.1f} s)")


if __name__ == "__main__":
    main()
