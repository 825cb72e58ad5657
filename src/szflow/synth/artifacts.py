"""Artifacts: what a detector must learn to ignore, several of them rhythmic like seizures.

Scalp-level artifacts are added to the site potentials (before referencing, so a reference
picks them up as a real one would): eye blinks and lateral eye movements (frontal), muscle
bursts (high-frequency, temporal), chewing (1-2 Hz trains of muscle bursts: rhythmic, seizure-like),
rhythmic movement (2-6 Hz, constant frequency: the hardest mimic), photic driving. Channel-level
artifacts are added to one recorded signal: electrode pops, 60 Hz line noise, a flat channel.
Each function returns the (kind, start_s, stop_s) of what it added, for figures and checks.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import oaconvolve

from szflow.synth.channels import DISTANCE, SITES
from szflow.synth.noise import band, shaped_noise, slow_envelope, smoothstep

Span = tuple[str, float, float]


def _weights(values: dict[str, float]) -> np.ndarray:
    return np.array([values.get(site, 0.0) for site in SITES], dtype=np.float32)


def _mirror(values: dict[str, float]) -> dict[str, float]:
    """Right-hemisphere counterpart of a left-hemisphere weight map (odd numbers <-> even)."""
    swap = {"FP1": "FP2", "F3": "F4", "F7": "F8", "C3": "C4", "T3": "T4", "T5": "T6", "P3": "P4",
            "O1": "O2", "A1": "A2", "T1": "T2", "LOC": "ROC"}
    swap.update({v: k for k, v in swap.items()})
    return {swap.get(k, k): v for k, v in values.items()}


_BLINK = _weights({"FP1": 1.0, "FP2": 1.0, "LOC": 0.7, "ROC": 0.7, "F3": 0.35, "F4": 0.35, "F7": 0.3,
                   "F8": 0.3, "FZ": 0.3, "C3": 0.06, "C4": 0.06, "CZ": 0.06, "T1": 0.1, "T2": 0.1})
_LATERAL = _weights({"LOC": 1.0, "ROC": -1.0, "F7": 0.5, "F8": -0.5, "FP1": 0.25, "FP2": -0.25,
                     "T1": 0.3, "T2": -0.3, "T3": 0.12, "T4": -0.12, "F3": 0.1, "F4": -0.1})
_LEFT_MUSCLE = {"T3": 1.0, "F7": 1.0, "T1": 1.0, "A1": 0.8, "T5": 0.6, "FP1": 0.4, "LOC": 0.5,
                "F3": 0.25, "C3": 0.2, "O1": 0.15, "P3": 0.1}
_MUSCLE = {"left": _weights(_LEFT_MUSCLE), "right": _weights(_mirror(_LEFT_MUSCLE))}
_MUSCLE["both"] = np.maximum(_MUSCLE["left"], _MUSCLE["right"])
_GLOSSO = _weights({"FP1": 0.6, "FP2": 0.6, "F7": 1.0, "F8": 1.0, "T1": 0.9, "T2": 0.9, "T3": 0.6,
                    "T4": 0.6, "F3": 0.4, "F4": 0.4, "FZ": 0.3, "A1": 0.5, "A2": 0.5})
_PHOTIC = _weights({"O1": 1.0, "O2": 1.0, "P3": 0.4, "P4": 0.4, "PZ": 0.4, "T5": 0.4, "T6": 0.4})
# The heart's field reaches the left ear and temporal sites most (the cardiac axis points left-down).
_ECG = _weights({"A1": 1.0, "A2": 0.6, "T3": 0.5, "T5": 0.6, "T4": 0.3, "T6": 0.35, "O1": 0.3,
                 "O2": 0.25, "T1": 0.4, "T2": 0.25})


def _episodes(rng: np.random.Generator, duration: float, per_minute: float, shortest: float,
              longest: float) -> list[tuple[float, float]]:
    count = int(rng.poisson(per_minute * duration / 60.0))
    spans = []
    for _ in range(count):
        length = float(min(rng.uniform(shortest, longest), 0.9 * duration))
        start = float(rng.uniform(0.0, duration - length))
        spans.append((start, length))
    return sorted(spans)


def _kernel_train(n: int, fs: float, times: np.ndarray, amplitudes: np.ndarray, kernel: np.ndarray,
                  lead: int = 0) -> np.ndarray:
    """Sum of `kernel` copies placed at `times` (s) and scaled by `amplitudes`: one convolution."""
    impulses = np.zeros(n + lead, dtype=np.float32)
    index = np.clip((times * fs).astype(np.int64), 0, n - 1)
    np.add.at(impulses, index, amplitudes.astype(np.float32))
    return oaconvolve(impulses, kernel.astype(np.float32))[lead:lead + n].astype(np.float32)


def eye_blinks(rng: np.random.Generator, v: np.ndarray, fs: float, rate: float) -> list[Span]:
    n = v.shape[1]
    duration = n / fs
    count = int(rng.poisson(rng.uniform(4.0, 15.0) * rate * duration / 60.0))
    if count == 0:
        return []
    times = np.sort(rng.uniform(0.0, duration - 0.5, size=count))
    amplitudes = rng.uniform(60.0, 180.0, size=count)
    tau = 0.06
    tk = np.arange(int(0.6 * fs)) / fs
    kernel = (tk / tau) ** 2 * np.exp(2.0 - tk / tau) / 4.0  # gamma bump, peak 1 at 2*tau
    blink = _kernel_train(n, fs, times, amplitudes, kernel)
    v += np.outer(_BLINK, blink)
    return [("eye_blink", float(t), float(t) + 0.5) for t in times]


def eye_movements(rng: np.random.Generator, v: np.ndarray, fs: float, rate: float) -> list[Span]:
    """Lateral saccades: the gaze steps between positions, opposite polarity at F7 and F8."""
    if rng.random() > 0.6:
        return []
    n = v.shape[1]
    duration = n / fs
    count = int(rng.poisson(8.0 * rate * duration / 60.0))
    if count == 0:
        return []
    times = np.sort(rng.uniform(0.0, duration, size=count))
    positions = rng.uniform(-1.0, 1.0, size=count)
    steps = np.diff(np.concatenate(([0.0], positions)))
    kernel = np.ones(int(0.04 * fs)) / int(0.04 * fs)  # a saccade takes ~40 ms
    gaze = np.cumsum(_kernel_train(n, fs, times, steps, kernel))
    v += np.outer(_LATERAL * np.float32(rng.uniform(20.0, 50.0)), gaze.astype(np.float32))
    return [("eye_movement", float(times[0]), float(times[-1]))]


def muscle_bursts(rng: np.random.Generator, v: np.ndarray, fs: float, rate: float) -> list[Span]:
    n = v.shape[1]
    spans = []
    high = min(100.0, 0.42 * fs)
    for start, length in _episodes(rng, n / fs, 1.2 * rate, 0.5, 6.0):
        a, m = int(start * fs), int(length * fs)
        side = str(rng.choice(["left", "right", "both"], p=[0.35, 0.35, 0.3]))
        emg = shaped_noise(rng, len(SITES), m, fs, band(20.0, high, 8.0))
        t = np.arange(m) / fs
        edge = smoothstep(t / 0.15) * smoothstep((length - t) / 0.15)
        flicker = 1.0 + 0.4 * slow_envelope(rng, m, fs, 3.0)[0]
        envelope = (np.float32(rng.uniform(5.0, 30.0)) * edge * np.clip(flicker, 0.2, None)).astype(np.float32)
        v[:, a:a + m] += emg * _MUSCLE[side][:, None] * envelope
        spans.append(("muscle", start, start + length))
    return spans


def chewing(rng: np.random.Generator, v: np.ndarray, fs: float, rate: float) -> list[Span]:
    """Trains of bilateral temporal muscle bursts at the chewing rate, with glossokinetic slow waves."""
    n = v.shape[1]
    per_minute = (0.35 if rng.random() < 0.5 else 0.04) * rate
    spans = []
    high = min(100.0, 0.42 * fs)
    for start, length in _episodes(rng, n / fs, per_minute, 4.0, 25.0):
        a, m = int(start * fs), int(length * fs)
        chew_hz = rng.uniform(0.9, 2.0)
        times = np.arange(0.0, length - 0.3, 1.0 / chew_hz)
        times = times + rng.normal(0.0, 0.04 / chew_hz, size=times.size)
        times = np.clip(times, 0.0, length - 0.3)
        burst = np.hanning(max(int(rng.uniform(0.12, 0.3) * fs), 4))
        amplitudes = rng.uniform(0.6, 1.0, size=times.size)
        envelope = _kernel_train(m, fs, times, amplitudes, burst)
        emg = shaped_noise(rng, len(SITES), m, fs, band(20.0, high, 8.0))
        v[:, a:a + m] += emg * _MUSCLE["both"][:, None] * (np.float32(rng.uniform(40.0, 140.0)) * envelope)
        # The tongue and jaw move at the same rhythm: a slow wave over frontal and temporal sites.
        slow = np.sin(2 * np.pi * chew_hz * np.arange(m) / fs + rng.uniform(0, 2 * np.pi))
        edge = smoothstep(np.arange(m) / fs / 0.5) * smoothstep((length - np.arange(m) / fs) / 0.5)
        v[:, a:a + m] += np.outer(_GLOSSO * np.float32(rng.uniform(10.0, 40.0)), (slow * edge).astype(np.float32))
        spans.append(("chewing", start, start + length))
    return spans


def rhythmic_movement(rng: np.random.Generator, v: np.ndarray, fs: float, rate: float) -> list[Span]:
    """Patting, rocking or tremor: a steady 2-6 Hz rhythm over a patch of scalp, abrupt on and off."""
    if rng.random() > 0.35:
        return []
    n = v.shape[1]
    spans = []
    for start, length in _episodes(rng, n / fs, 0.2 * rate, 3.0, 20.0):
        a, m = int(start * fs), int(length * fs)
        t = np.arange(m) / fs
        f = rng.uniform(2.0, 6.0) * (1.0 + 0.02 * slow_envelope(rng, m, fs, 0.3)[0])
        phase = 2 * np.pi * np.cumsum(f) / fs
        wave = np.sin(phase) + 0.3 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi))
        edge = smoothstep(t / 0.2) * smoothstep((length - t) / 0.2)
        center = int(rng.integers(len(SITES)))
        radius = rng.uniform(0.4, 1.5)
        weight = np.exp(-((DISTANCE[center] / radius) ** 2)).astype(np.float32)
        v[:, a:a + m] += np.outer(weight * np.float32(rng.uniform(30.0, 150.0)), (wave * edge).astype(np.float32))
        spans.append(("rhythmic_movement", start, start + length))
    return spans


def photic_schedule(rng: np.random.Generator, duration: float) -> list[tuple[float, float, float]]:
    """Intermittent photic stimulation: 10 s flash trains at rising rates, 10 s apart."""
    rates = [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0, 21.0, 23.0]
    fit = int(max(0.0, duration - 20.0) // 20.0)
    if fit == 0:
        return []
    count = int(rng.integers(1, min(fit, len(rates)) + 1))
    first = float(rng.uniform(10.0, duration - 20.0 * count))
    return [(first + 20.0 * i, first + 20.0 * i + 10.0, rates[i]) for i in range(count)]


def photic_driving(rng: np.random.Generator, v: np.ndarray, fs: float,
                   schedule: list[tuple[float, float, float]]) -> list[Span]:
    """Occipital responses locked to the flash rate (strongest near the alpha band)."""
    n = v.shape[1]
    for start, stop, rate_hz in schedule:
        a, b = int(start * fs), min(int(stop * fs), n)
        t = np.arange(b - a) / fs
        gain = rng.uniform(3.0, 12.0) * np.exp(-0.5 * ((rate_hz - 10.0) / 6.0) ** 2)
        wave = np.sin(2 * np.pi * rate_hz * t) * smoothstep(t / 0.3) * smoothstep((stop - start - t) / 0.3)
        v[:, a:b] += np.outer(_PHOTIC * np.float32(gain), wave.astype(np.float32))
    return [("photic", start, stop) for start, stop, _ in schedule]


def photic_marker(n: int, fs: float, schedule: list[tuple[float, float, float]]) -> np.ndarray:
    """The PHOTIC channel: a 10 ms pulse per flash."""
    marker = np.zeros(n, dtype=np.float32)
    width = max(int(0.01 * fs), 1)
    for start, stop, rate_hz in schedule:
        for flash in np.arange(start, stop, 1.0 / rate_hz):
            i = int(flash * fs)
            marker[i:i + width] = 5.0
    return marker


def ecg(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """A unit-R-wave ECG with heart-rate variability (P, QRS, T waves as Gaussian bumps)."""
    duration = n / fs
    heart_hz = rng.uniform(55.0, 95.0) / 60.0
    beats = []
    t = rng.uniform(0.0, 1.0 / heart_hz)
    while t < duration:
        beats.append(t)
        t += (1.0 / heart_hz) * (1.0 + 0.04 * np.sin(2 * np.pi * 0.25 * t) + 0.02 * rng.standard_normal())
    lead = int(0.3 * fs)
    tk = np.arange(-lead, int(0.5 * fs)) / fs
    parts = ((0.12, -0.18, 0.025), (-0.12, -0.03, 0.010), (1.0, 0.0, 0.012), (-0.25, 0.035, 0.012),
             (0.3, 0.26, 0.045))
    kernel = sum(h * np.exp(-0.5 * ((tk - c) / w) ** 2) for h, c, w in parts)
    return _kernel_train(n, fs, np.array(beats), np.ones(len(beats)), kernel, lead=lead)


def add_ecg(rng: np.random.Generator, v: np.ndarray, heart: np.ndarray) -> None:
    v += np.outer(_ECG * np.float32(rng.uniform(2.0, 8.0)), heart)


def electrode_pops(rng: np.random.Generator, x: np.ndarray, fs: float, rate: float,
                   names: list[str]) -> list[Span]:
    """Sudden steps with slow decay on one electrode (a loose contact), often several in a row."""
    rows, n = x.shape
    duration = n / fs
    spans = []
    for _ in range(int(rng.poisson(rate * duration / 150.0))):
        row = int(rng.integers(rows))
        first = rng.uniform(0.0, duration - 2.0)
        for k in range(int(rng.integers(1, 5))):
            at = first + k * rng.uniform(0.3, 3.0)
            tau = rng.uniform(0.1, 0.6)
            a = int(at * fs)
            m = min(int(5 * tau * fs), n - a)
            if m <= 0:
                break
            t = np.arange(m) / fs
            shape = (1.0 - np.exp(-t / 0.004)) * np.exp(-t / tau)
            x[row, a:a + m] += np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(80.0, 400.0)) * shape.astype(np.float32)
            spans.append((f"pop:{names[row]}", float(at), float(at + 5 * tau)))
    return spans


def line_noise(rng: np.random.Generator, x: np.ndarray, fs: float, mains_hz: float = 60.0) -> list[Span]:
    """Mains pickup, different on every channel (electrode impedances differ), odd harmonics too."""
    if rng.random() > 0.6:
        return []
    rows, n = x.shape
    t = np.arange(n) / fs
    for harmonic, share in ((1, 1.0), (3, 0.15)):
        f = mains_hz * harmonic
        if f >= 0.45 * fs:
            continue
        c = np.cos(2 * np.pi * f * t).astype(np.float32)
        s = np.sin(2 * np.pi * f * t).astype(np.float32)
        amplitude = share * rng.lognormal(np.log(2.0), 0.8, size=rows)
        if harmonic == 1 and rng.random() < 0.3:
            amplitude[rng.integers(rows)] = rng.uniform(20.0, 60.0)  # one poorly attached electrode
        phase = rng.uniform(-0.3, 0.3, size=rows) + rng.uniform(0, 2 * np.pi)
        x += np.outer((amplitude * np.cos(phase)).astype(np.float32), c)
        x += np.outer((amplitude * np.sin(phase)).astype(np.float32), s)
    return [("line_noise", 0.0, n / fs)]


def flat_channel(rng: np.random.Generator, x: np.ndarray, fs: float, names: list[str],
                 candidates: list[int]) -> list[Span]:
    """Now and then an electrode (one of the `candidates` rows) records nothing: a constant signal."""
    if rng.random() > 0.08 or not candidates:
        return []
    n = x.shape[1]
    row = candidates[int(rng.integers(len(candidates)))]
    start = 0 if rng.random() < 0.5 else int(rng.uniform(0.2, 0.8) * n)
    x[row, start:] = np.float32(rng.uniform(-20.0, 20.0))
    return [(f"flat:{names[row]}", start / fs, n / fs)]


def respiration(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    t = np.arange(n) / fs
    rate_hz = rng.uniform(0.2, 0.33)
    depth = 1.0 + 0.2 * slow_envelope(rng, n, fs, 0.02)[0]
    return (rng.uniform(150.0, 600.0) * depth * np.sin(2 * np.pi * rate_hz * t + rng.uniform(0, 6.3))).astype(np.float32)
