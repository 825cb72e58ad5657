"""Spectrally shaped Gaussian noise, made in the frequency domain (one FFT per row, no filters)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft


def shaped_noise(rng: np.random.Generator, rows: int, n: int, fs: float,
                 amplitude: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`rows` independent float32 noise series of `n` samples, unit RMS each, with spectrum |amplitude(f)|².

    Random complex spectra shaped by `amplitude` and inverted: exact spectra at any length, and
    far faster than filtering white noise. The series are made at a fast FFT length and cut to `n`.
    """
    if n <= 0:
        return np.zeros((rows, 0), dtype=np.float32)
    n_fft = scipy.fft.next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    shape = np.asarray(amplitude(freqs), dtype=np.float32)
    shape[0] = 0.0  # no DC: offsets are not what these series model
    # Draw random values only where the spectrum is not negligible: band-limited series (alpha,
    # muscle, delta) then cost a fraction of the random numbers.
    support = np.flatnonzero(shape > 1e-6 * max(float(shape.max()), 1e-30))
    spectrum = np.zeros((rows, freqs.size), dtype=np.complex64)
    if support.size:
        lo, hi = int(support[0]), int(support[-1]) + 1
        part = spectrum[:, lo:hi]
        part.real = rng.standard_normal((rows, hi - lo), dtype=np.float32)
        part.imag = rng.standard_normal((rows, hi - lo), dtype=np.float32)
        part *= shape[lo:hi]
    series = scipy.fft.irfft(spectrum, n=n_fft, axis=-1)[:, :n]
    rms = np.sqrt(np.mean(np.square(series, dtype=np.float32), axis=-1, keepdims=True))
    series /= np.maximum(rms, np.float32(1e-12))
    return np.ascontiguousarray(series, dtype=np.float32)


def pink(exponent: float, knee_hz: float = 1.0, lowpass_hz: float = 70.0,
         highpass_hz: float = 0.3) -> Callable[[np.ndarray], np.ndarray]:
    """Amplitude of a 1/f^exponent power spectrum, flat below `knee_hz`, rolled off at both ends."""

    def amplitude(f: np.ndarray) -> np.ndarray:
        power = (f * f + knee_hz * knee_hz) ** (-exponent / 2.0)
        highpass = (f / highpass_hz) ** 2 / (1.0 + (f / highpass_hz) ** 2)
        lowpass = 1.0 / (1.0 + (f / lowpass_hz) ** 8)
        return np.sqrt(power * highpass) * lowpass

    return amplitude


def band(low_hz: float, high_hz: float, edge_hz: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Flat amplitude between `low_hz` and `high_hz` with Gaussian-rounded edges."""
    edge = edge_hz if edge_hz is not None else max(0.1, 0.15 * (high_hz - low_hz))

    def amplitude(f: np.ndarray) -> np.ndarray:
        below = np.exp(-0.5 * ((np.minimum(f - low_hz, 0.0)) / edge) ** 2)
        above = np.exp(-0.5 * ((np.maximum(f - high_hz, 0.0)) / edge) ** 2)
        return below * above

    return amplitude


def peak(center_hz: float, width_hz: float) -> Callable[[np.ndarray], np.ndarray]:
    """A Gaussian spectral peak: narrow-band noise that waxes and wanes like a cerebral rhythm."""

    def amplitude(f: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * ((f - center_hz) / width_hz) ** 2)

    return amplitude


def slow_envelope(rng: np.random.Generator, n: int, fs: float, cutoff_hz: float, rows: int = 1) -> np.ndarray:
    """Smooth random curves (unit RMS, zero mean) varying on a time scale of 1/cutoff_hz.

    Made at 4 Hz and interpolated: an envelope needs no more, and this costs nothing at 1000 Hz.
    """
    duration = n / fs
    coarse_fs = 4.0
    m = max(int(np.ceil(duration * coarse_fs)) + 2, 8)
    coarse = shaped_noise(rng, rows, m, coarse_fs, peak(0.0, cutoff_hz))
    t = np.arange(n, dtype=np.float64) / fs
    grid = np.arange(m, dtype=np.float64) / coarse_fs
    return np.stack([np.interp(t, grid, row).astype(np.float32) for row in coarse])


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
