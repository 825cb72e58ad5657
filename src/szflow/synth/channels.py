"""Scalp geometry and the EDF signal lists of synthetic recordings (labels, rates, kinds).

Positions are a flat projection of the 10-20 system on the unit disc (nose up, left negative):
good enough for distance-based spatial correlation and seizure spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from szflow.data.edf import ELECTRODES

# Sites that carry scalp potentials: the 19 electrodes plus ear, anterior-temporal and eye leads.
POSITIONS: dict[str, tuple[float, float]] = {
    "FP1": (-0.31, 0.95), "FP2": (0.31, 0.95),
    "F7": (-0.81, 0.59), "F3": (-0.40, 0.55), "FZ": (0.0, 0.50), "F4": (0.40, 0.55), "F8": (0.81, 0.59),
    "T3": (-1.0, 0.0), "C3": (-0.50, 0.0), "CZ": (0.0, 0.0), "C4": (0.50, 0.0), "T4": (1.0, 0.0),
    "T5": (-0.81, -0.59), "P3": (-0.40, -0.55), "PZ": (0.0, -0.50), "P4": (0.40, -0.55), "T6": (0.81, -0.59),
    "O1": (-0.31, -0.95), "O2": (0.31, -0.95),
    "A1": (-1.15, -0.15), "A2": (1.15, -0.15), "T1": (-0.97, 0.30), "T2": (0.97, 0.30),
    "LOC": (-0.62, 1.05), "ROC": (0.62, 1.05),
}
SITES: tuple[str, ...] = tuple(POSITIONS)
SITE_INDEX: dict[str, int] = {name: i for i, name in enumerate(SITES)}
XY = np.array([POSITIONS[name] for name in SITES], dtype=np.float64)
DISTANCE = np.linalg.norm(XY[:, None, :] - XY[None, :, :], axis=-1)

MONTAGES: dict[str, str] = {"01_tcp_ar": "REF", "02_tcp_le": "LE", "03_tcp_ar_a": "REF"}

# The TCP (double banana) derivations that TUSZ `.csv` files label, per montage.
TCP_CHANNELS: tuple[tuple[str, str], ...] = (
    ("FP1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("FP2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("A1", "T3"), ("T3", "C3"), ("C3", "CZ"), ("CZ", "C4"), ("C4", "T4"), ("T4", "A2"),
    ("FP1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("FP2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
)


def tcp_channels(montage: str) -> list[tuple[str, str]]:
    # 03_tcp_ar_a has no ear electrodes, so its montage drops the two derivations that use them.
    if montage == "03_tcp_ar_a":
        return [pair for pair in TCP_CHANNELS if "A1" not in pair and "A2" not in pair]
    return list(TCP_CHANNELS)


@dataclass(frozen=True)
class SignalSpec:
    """One EDF signal: its label, rate, physical unit and how the simulator fills it."""

    label: str
    kind: str  # "eeg" (referential scalp site), "bipolar", "ekg", "photic", "resp", "emg", "open", "slow"
    site: str = ""  # scalp site for "eeg" signals (for "bipolar": the site of the derivation's first electrode)
    rate: float = 250.0
    dimension: str = "uV"


# Extra signals a TUSZ file may carry, in the order a typical TUSZ file lists them.
# (label stem, kind, site). Stems go through `_label` with the montage suffix.
_EXTRAS: tuple[tuple[str, str, str], ...] = (
    ("ROC", "eeg", "ROC"), ("LOC", "eeg", "LOC"), ("T1", "eeg", "T1"), ("T2", "eeg", "T2"),
    ("SP1", "eeg", "T1"), ("SP2", "eeg", "T2"), ("C3P", "eeg", "C3"), ("C4P", "eeg", "C4"),
    ("LUC", "eeg", "LOC"), ("RLC", "eeg", "ROC"), ("RESP1", "resp", ""), ("RESP2", "resp", ""),
    ("EMG", "emg", ""),
    ("26", "open", ""), ("27", "open", ""), ("28", "open", ""), ("29", "open", ""),
    ("30", "open", ""), ("31", "open", ""), ("32", "open", ""),
)
# Signals TUSZ files carry at 1 Hz (derived by the recording software, not amplifier inputs).
SLOW_SIGNALS: tuple[str, ...] = ("IBI", "BURSTS", "SUPPR")
MIN_SIGNALS, MAX_SIGNALS = 20, 41


def _label(stem: str, suffix: str) -> str:
    return f"EEG {stem}-{suffix}"


def signal_list(rng: np.random.Generator, montage: str, rate: float) -> list[SignalSpec]:
    """A TUSZ-like signal list: the 19 electrodes, EKG, and a random subset of extras (20-41 signals)."""
    suffix = MONTAGES[montage]
    electrodes = [SignalSpec(_label(e, suffix), "eeg", e, rate) for e in ELECTRODES]
    ears = [] if montage == "03_tcp_ar_a" else [SignalSpec(_label(e, suffix), "eeg", e, rate) for e in ("A1", "A2")]
    # TUSZ lists FP1..T6, then A1/A2, then FZ CZ PZ: the electrodes are not one contiguous run.
    signals = electrodes[:16] + ears + electrodes[16:]
    signals.append(SignalSpec(_label("EKG1", suffix), "ekg", "", rate))
    budget = MAX_SIGNALS - len(signals)
    with_slow = rng.random() < 0.7
    if with_slow:
        budget -= len(SLOW_SIGNALS) + 1
    n_extra = int(rng.integers(0, min(budget, len(_EXTRAS)) + 1))
    chosen = sorted(rng.choice(len(_EXTRAS), size=n_extra, replace=False)) if n_extra else []
    for i in chosen:
        stem, kind, site = _EXTRAS[i]
        signals.append(SignalSpec(_label(stem, suffix), kind, site, rate))
    if with_slow:
        signals.append(SignalSpec("PHOTIC-REF", "photic", "", rate, "mV"))
        signals.extend(SignalSpec(name, "slow", "", 1.0, "") for name in SLOW_SIGNALS)
    if rng.random() < 0.2:
        # Some files list their signals in another order: readers must select by label.
        order = rng.permutation(len(signals))
        signals = [signals[i] for i in order]
    assert MIN_SIGNALS <= len(signals) <= MAX_SIGNALS
    return signals
