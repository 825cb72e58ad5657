"""Synthetic TUSZ-like corpus: EDF + .csv + .csv_bi in the TUSZ tree, deterministic from a seed.

Modules, one concept each: `plan` (what the corpus holds), `channels` (geometry, signal lists),
`noise` (spectrally shaped noise), `background`, `seizures`, `artifacts`, `recording` (one
recording's signals), `variants` (the real-world forms a recording is written in), `writer` (EDF,
EDF+D and annotation files), `broken` (deliberately damaged files), `corpus` (the whole tree).
"""

from szflow.synth.corpus import BROKEN_LIST, generate_corpus, write_planned_recording, write_recording
from szflow.synth.plan import CorpusPlan, RecordingSpec, make_plan
from szflow.synth.recording import SimulatedRecording, simulate
from szflow.synth.variants import VARIANT_KINDS, Variant, written_signals

__all__ = ["BROKEN_LIST", "VARIANT_KINDS", "CorpusPlan", "RecordingSpec", "SimulatedRecording", "Variant",
           "generate_corpus", "make_plan", "simulate", "write_planned_recording", "write_recording",
           "written_signals"]
