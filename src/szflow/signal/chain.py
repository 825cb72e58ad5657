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
from szflow.errors import InputFileError
from szflow.signal.filters import design_filter, min_filter_length, zero_phase_filter
from szflow.signal.montage import common_average_reference
from szflow.signal.normalise import normalise
from szflow.signal.resample import resample_channels

N_CHANNELS = len(ELECTRODES)
# What the cache and the network read: float16 keeps full relative precision over +-clip.
STORAGE_DTYPE = np.float16


def chain_filter(cfg: PreprocessConfig) -> np.ndarray:
    """The band-pass + notch SOS cascade of `cfg` (ConfigError for a setting it cannot design)."""
    return design_filter(float(cfg.sample_rate_hz), tuple(cfg.bandpass_hz), cfg.bandpass_order, cfg.notch_hz,
                         cfg.notch_quality)


def reference_and_filter(block: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Common average reference (in place on `block`, which the caller owns), then the zero-phase
    filter; returns the filtered block (a new float32 array)."""
    common_average_reference(block)
    return zero_phase_filter(block, sos)


def quantise(block: np.ndarray) -> np.ndarray:
    """The stored form of a preprocessed block."""
    return block.astype(STORAGE_DTYPE, copy=False)


def preprocess_recording(recording: EegRecording, cfg: PreprocessConfig) -> np.ndarray:
    """The electrodes of `recording` -> (N_CHANNELS, n) float32 at cfg.sample_rate_hz.

    Steps: resample every electrode from its own rate (polyphase), common average reference,
    zero-phase band-pass + notch, per-channel robust normalisation clipped to +-cfg.clip.
    Raises `InputFileError` (naming the file) for a recording too short to filter.
    """
    rate = float(cfg.sample_rate_hz)
    block = resample_channels(recording.signals, recording.sample_rates, rate)
    if block.shape[0] != N_CHANNELS:
        raise InputFileError(recording.path, f"expected {N_CHANNELS} electrodes, got {block.shape[0]}")
    sos = chain_filter(cfg)
    if block.shape[1] < min_filter_length(sos):
        raise InputFileError(recording.path, f"too short to filter: {block.shape[1]} samples at {rate:g} Hz")
    # `resample_channels` returns a new array we own, so the reference is subtracted in place.
    filtered = reference_and_filter(block, sos)
    del block  # a 1-hour recording is 70 MB per float32 copy: keep at most two alive
    normalise(filtered, cfg.normalisation, cfg.clip)
    return filtered
