"""Real-world forms of a recording: bipolar montages, other label conventions, absent electrodes, EDF+D.

Most synthetic recordings are written as TUSZ writes them (referential, `EEG FP1-REF`). A few per
split are written in a form real EEG also comes in, so that every stage meets it:

- `bipolar_tcp`: only the TUSZ TCP (double banana) derivations, `EEG FP1-F7` ... (22; 20 without
  A1/A2 in `03_tcp_ar_a`). They connect 17 of the 19 electrodes in one graph (FZ and PZ are in
  none); A1/A2 hang on T3/T4.
- `bipolar_chbmit`: only the CHB-MIT derivation list in its 10-10 names, `FP1-F7`, `F7-T7`, ...,
  `T7-FT9`, `FT9-FT10`, `FT10-T8` and `T8-P8` twice, as CHB-MIT files list it (23). Sixteen
  electrodes form one connected graph; FZ-CZ-PZ is a chain of its own, connected to nothing else.
  FT9/FT10 are not modelled sites: they carry the potentials of T1/T2, the nearest ones.
- `labels_1010`: TUSZ labels with the 10-10 names T7 T8 P7 P8 for T3 T4 T5 T6.
- `labels_padded`: PhysioNet EEGMMIDB labels, 10-10 names padded with dots to 4 characters
  (`Fp1.`, `Fz..`, `T7..`).
- `labels_suffix`: no `EEG ` prefix and another reference suffix (`FP1-LE`, `Fp1-Ref`, `FP1-AR`, ...).
- `missing_electrodes`: one to four of the 19 electrodes are not in the file.
- `discontinuous`: EDF+D, the recording with a gap of whole seconds (data records absent);
  annotations stay in file time (the gap counts).

A bipolar derivation A-B holds the referential signals' difference (the reference cancels), so
the electrode-level artifacts of A and B (pops, line noise, a flat electrode) are in it too.
The forms are applied after simulation and draw no random numbers: the same recording can be
written in every form (`written_signals`), and its signals do not depend on the form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from szflow.data.edf import ELECTRODES
from szflow.synth.channels import SignalSpec, tcp_channels

REFERENTIAL = "referential"
VARIANT_KINDS: tuple[str, ...] = ("bipolar_tcp", "bipolar_chbmit", "labels_1010", "labels_padded",
                                  "labels_suffix", "missing_electrodes", "discontinuous")
BIPOLAR_KINDS: tuple[str, ...] = ("bipolar_tcp", "bipolar_chbmit")

# CHB-MIT's derivations in the order and names of its files (T8-P8 appears twice there).
CHBMIT_DERIVATIONS: tuple[tuple[str, str], ...] = (
    ("FP1", "F7"), ("F7", "T7"), ("T7", "P7"), ("P7", "O1"),
    ("FP1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("FP2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    ("FP2", "F8"), ("F8", "T8"), ("T8", "P8"), ("P8", "O2"),
    ("FZ", "CZ"), ("CZ", "PZ"),
    ("P7", "T7"), ("T7", "FT9"), ("FT9", "FT10"), ("FT10", "T8"), ("T8", "P8"),
)
# 10-10 names -> the modelled sites that carry their potentials.
_SITE_OF_1010 = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6", "FT9": "T1", "FT10": "T2"}
_1010_OF_SITE = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
# Reference suffixes other systems write, with the case they write the electrode names in.
SUFFIX_STYLES: dict[str, bool] = {"-LE": False, "-REF": False, "-Ref": True, "-AR": False, "-AVG": True}
MAX_ABSENT = 4
# Each side of an EDF+D gap keeps at least this much recorded EEG (a usable segment).
MIN_SEGMENT_S = 60
# Seizures keep this distance from a gap: the gap sits in background.
GAP_MARGIN_S = 5.0
_RELABELLED_SITES = frozenset(ELECTRODES) | {"A1", "A2"}


@dataclass(frozen=True)
class Variant:
    """The form a recording is written in, with what the form needs (drawn in the plan)."""

    kind: str = REFERENTIAL
    absent: tuple[str, ...] = ()  # missing_electrodes: the electrodes not written
    suffix: str = ""  # labels_suffix: one of SUFFIX_STYLES
    gap_start_s: float = 0.0  # discontinuous: file time of the first second not recorded
    gap_s: float = 0.0  # discontinuous: whole seconds not recorded

    def extra_sites(self) -> tuple[str, ...]:
        """Sites whose referential signal the form needs even when the signal list lacks them."""
        return ("T1", "T2") if self.kind == "bipolar_chbmit" else ()

    def recorded_s(self, duration_s: float) -> float:
        """Seconds of EEG in the file (file time less the gap)."""
        return duration_s - self.gap_s


def own_site(signal: SignalSpec) -> str | None:
    """The site an `eeg` signal records when its label names that site itself (not SP1, C3P, ...)."""
    if signal.kind != "eeg":
        return None
    stem = signal.label.split()[-1].split("-")[0]
    return signal.site if stem == signal.site else None


def _title(name: str) -> str:
    return name[0] + name[1:].lower()


def _label(name: str, variant: Variant, original: str) -> str:
    if variant.kind == "labels_1010":
        return original.replace(f" {name}-", f" {_1010_OF_SITE.get(name, name)}-")
    if variant.kind == "labels_padded":
        return f"{_title(_1010_OF_SITE.get(name, name)):.<4}"
    if variant.kind == "labels_suffix":
        return f"{_title(name) if SUFFIX_STYLES[variant.suffix] else name}{variant.suffix}"
    return original


def derivations(variant: Variant, montage: str) -> list[tuple[str, str, str]]:
    """(label, site A, site B) of each derivation A-B of a bipolar form, in file order."""
    if variant.kind == "bipolar_tcp":
        return [(f"EEG {a}-{b}", a, b) for a, b in tcp_channels(montage)]
    return [(f"{a}-{b}", _SITE_OF_1010.get(a, a), _SITE_OF_1010.get(b, b)) for a, b in CHBMIT_DERIVATIONS]


def written_signals(variant: Variant, montage: str, specs: Sequence[SignalSpec], arrays: Sequence[np.ndarray],
                    extra_sites: Mapping[str, np.ndarray]) -> tuple[list[SignalSpec], list[np.ndarray]]:
    """The signal list and values a recording is written with in `variant`'s form.

    `specs`/`arrays` are the simulated referential recording (spec.signals order); `extra_sites`
    holds the referential signals of sites `variant.extra_sites()` names that `specs` lacks.
    """
    if variant.kind in BIPOLAR_KINDS:
        referential = {own_site(s): a for s, a in zip(specs, arrays, strict=True) if own_site(s)}
        referential = {**extra_sites, **referential}
        rate = next(s.rate for s in specs if s.kind == "eeg")
        bipolar = [(SignalSpec(label, "bipolar", site_a, rate), referential[site_a] - referential[site_b])
                   for label, site_a, site_b in derivations(variant, montage)]
        others = [(s, a) for s, a in zip(specs, arrays, strict=True) if s.kind != "eeg"]
        pairs = bipolar + others
    else:
        pairs = []
        for s, a in zip(specs, arrays, strict=True):
            site = own_site(s)
            if site is not None and site in variant.absent:
                continue
            if site in _RELABELLED_SITES:
                s = SignalSpec(_label(site, variant, s.label), s.kind, s.site, s.rate, s.dimension)
            pairs.append((s, a))
    return [s for s, _ in pairs], [a for _, a in pairs]


def draw_variant(rng: np.random.Generator, kind: str, duration_s: float,
                 seizures: Sequence[tuple[float, float]]) -> Variant | None:
    """A `kind` variant for a recording of `duration_s` with these seizure (start, stop) spans;
    None when the form does not fit (no seizure-free stretch for a gap)."""
    if kind == "missing_electrodes":
        count = int(rng.integers(1, MAX_ABSENT + 1))
        chosen = set(rng.choice(ELECTRODES, size=count, replace=False).tolist())
        return Variant(kind, absent=tuple(e for e in ELECTRODES if e in chosen))
    if kind == "labels_suffix":
        return Variant(kind, suffix=str(rng.choice(list(SUFFIX_STYLES))))
    if kind == "discontinuous":
        gap = float(rng.integers(10, 61))
        starts = np.arange(MIN_SEGMENT_S, int(duration_s - gap - MIN_SEGMENT_S) + 1, dtype=float)
        fits = [g for g in starts if all(g + gap <= a - GAP_MARGIN_S or g >= b + GAP_MARGIN_S for a, b in seizures)]
        if not fits:
            return None
        # Prefer a gap before a seizure: its events then lie later in file time than in recorded time.
        before = [g for g in fits if any(g + gap <= a for a, _ in seizures)]
        pool = before or fits
        return Variant(kind, gap_start_s=float(pool[int(rng.integers(len(pool)))]), gap_s=gap)
    return Variant(kind)
