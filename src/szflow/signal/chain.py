"""The signal chain of one recording: resample, re-reference, filter, normalise, quantise.

Every consumer of preprocessed EEG (the preprocess stage, `szflow detect`, the chunked reader of
long recordings in `szflow.signal.streaming`) goes through these functions, so the network sees
one input convention: the electrodes of `szflow.data.edf.ELECTRODES` at `preprocess.sample_rate_hz`,
common average reference, zero-phase band-pass + notch, per-channel robust normalisation clipped
to +-clip, stored as float16.
"""

from __future__ import annotations

import numpy as np

from szflow.config import PreprocessConfig
from szflow.data.edf import ELECTRODES, EegRecording
from szflow.data.electrodes import ElectrodeMontage
from szflow.errors import InputFileError
from szflow.signal.filters import design_filter, min_filter_length, zero_phase_filter
from szflow.signal.montage import electrode_potentials
from szflow.signal.normalise import normalise
from szflow.signal.resample import resample_channels

N_CHANNELS = len(ELECTRODES)
# What the cache and the network read: float16 keeps full relative precision over +-clip.
STORAGE_DTYPE = np.float16


def chain_filter(cfg: PreprocessConfig) -> np.ndarray:
    """The band-pass + notch SOS cascade of `cfg` (ConfigError for a setting it cannot design)."""
    return design_filter(float(cfg.sample_rate_hz), tuple(cfg.bandpass_hz), cfg.bandpass_order, cfg.notch_hz,
                         cfg.notch_quality)


def reference_and_filter(sources: np.ndarray, montage: ElectrodeMontage, sos: np.ndarray) -> np.ndarray:
    """The 19 electrodes of the (n_sources, n) resampled signals (`montage`), common average
    reference over the present ones, then the zero-phase filter; returns a new (19, n) float32 block."""
    return zero_phase_filter(electrode_potentials(sources, montage), sos)


def quantise(block: np.ndarray) -> np.ndarray:
    """The stored form of a preprocessed block."""
    return block.astype(STORAGE_DTYPE, copy=False)


def preprocess_recording(recording: EegRecording, cfg: PreprocessConfig) -> np.ndarray:
    """The electrodes of `recording` -> (N_CHANNELS, n) float32 at cfg.sample_rate_hz.

    Steps: resample every signal read from its own rate (polyphase), combine them into the 19
    electrodes (`recording.montage`: read directly or reconstructed from derivations), common
    average reference over the present electrodes, zero-phase band-pass + notch, per-channel robust
    normalisation clipped to +-cfg.clip. Rows of missing electrodes are zero.
    Raises `InputFileError` (naming the file) for a recording too short to filter.
    """
    rate = float(cfg.sample_rate_hz)
    block = resample_channels(recording.signals, recording.sample_rates, rate)
    sos = chain_filter(cfg)
    if block.shape[1] < min_filter_length(sos):
        raise InputFileError(recording.path, f"too short to filter: {block.shape[1]} samples at {rate:g} Hz")
    block = electrode_potentials(block, recording.montage)
    # A 1-hour recording is 70 MB per float32 copy: keep at most two alive.
    filtered = zero_phase_filter(block, sos)
    del block
    normalise(filtered, cfg.normalisation, cfg.clip)
    return filtered
