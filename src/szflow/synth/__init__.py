"""Synthetic TUSZ-like corpus: EDF + .csv + .csv_bi in the TUSZ tree, deterministic from a seed.

Modules, one concept each: `plan` (what the corpus holds), `channels` (geometry, signal lists),
`noise` (spectrally shaped noise), `background`, `seizures`, `artifacts`, `recording` (one
recording's signals), `writer` (EDF and annotation files), `broken` (deliberately damaged files),
`corpus` (the whole tree).
"""

from szflow.synth.corpus import BROKEN_LIST, generate_corpus
from szflow.synth.plan import CorpusPlan, RecordingSpec, make_plan
from szflow.synth.recording import SimulatedRecording, simulate

__all__ = ["BROKEN_LIST", "CorpusPlan", "RecordingSpec", "SimulatedRecording", "generate_corpus",
           "make_plan", "simulate"]
