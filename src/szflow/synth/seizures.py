"""Seizures on the scalp: a rhythmic discharge whose frequency, amplitude, shape and field evolve.

One model covers the types: an ictal rhythm with a frequency trajectory (f_start -> f_end), a
waveform that morphs from a sharply contoured sinusoid to spike-and-wave, an amplitude that
builds up, and a field of radius λ(t) around the onset site that grows at `spread_speed`
(focal seizures recruit neighbours first, then perhaps both hemispheres). Around it: optional
low-voltage fast activity at onset, the background attenuated where the discharge takes over,
and post-ictal suppression and slowing after it. Absences are the special case of a fixed wide
field, 3 Hz spike-and-wave and no post-ictal state; tonic-clonic seizures add a tonic phase of
fast activity buried in muscle, then clonic bursts.
"""

from __future__ import annotations

import numpy as np

from szflow.synth.background import MIXING
from szflow.synth.channels import DISTANCE, SITE_INDEX, SITES, XY
from szflow.synth.noise import band, peak, shaped_noise, slow_envelope, smoothstep
from szflow.synth.plan import SeizureSpec

# A channel counts as involved (for the per-channel `.csv`) once its field weight reaches this.
INVOLVED_WEIGHT = 0.4
# Propagation delay across the scalp (s per scalp unit): the rhythm lags with distance.
LAG_S_PER_UNIT = 0.04
_TABLE = 2048
_PHASE = np.arange(_TABLE) * (2 * np.pi / _TABLE)


def _normalised(wave: np.ndarray) -> np.ndarray:
    # Unit peak-to-peak, so `amplitude_uv` reads as clinicians read EEG: peak to peak.
    wave = wave - wave.mean()
    return (wave / (wave.max() - wave.min())).astype(np.float32)


# One cycle of each waveform, looked up by phase: sharply contoured rhythm and spike-and-wave
# (surface-negative spike, then the slow wave).
_RHYTHM = _normalised(np.sin(_PHASE) + 0.35 * np.sin(2 * _PHASE + 0.8) + 0.12 * np.sin(3 * _PHASE + 1.6))
_wrapped = np.angle(np.exp(1j * _PHASE))
_SPIKE_WAVE = _normalised(-np.exp(-0.5 * (_wrapped / 0.22) ** 2)
                          + 0.45 * np.exp(-0.5 * ((_wrapped - 1.9) / 0.75) ** 2))


def _lookup(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    index = (phase * (_TABLE / (2 * np.pi))).astype(np.int64) % _TABLE
    return table[index]


def field_radius(spec: SeizureSpec, t: np.ndarray) -> np.ndarray:
    return np.minimum(spec.lambda0 + spec.spread_speed * t, spec.lambda_max)


def _distance(spec: SeizureSpec) -> np.ndarray:
    return DISTANCE[SITE_INDEX[spec.focus]]


def site_onsets(spec: SeizureSpec) -> dict[str, float | None]:
    """Seconds after onset at which each site's field weight reaches INVOLVED_WEIGHT (None: never)."""
    reach = np.sqrt(np.log(1.0 / INVOLVED_WEIGHT))
    onsets: dict[str, float | None] = {}
    for name, d in zip(SITES, _distance(spec)):
        needed = d / reach
        if needed <= spec.lambda0:
            onsets[name] = 0.0
        elif needed > spec.lambda_max or spec.spread_speed <= 0:
            onsets[name] = None
        else:
            onsets[name] = (needed - spec.lambda0) / spec.spread_speed
    return onsets


def channel_events(spec: SeizureSpec, channels: list[tuple[str, str]]) -> list[tuple[str, float, float]]:
    """(channel name, start, stop) of each TCP channel the seizure involves, for the `.csv`."""
    onsets = site_onsets(spec)
    events = []
    for a, b in channels:
        times = [onsets[s] for s in (a, b) if onsets.get(s) is not None]
        if not times:
            continue
        start = spec.start + min(times)
        if start < spec.stop - 1.0:
            events.append((f"{a}-{b}", round(start, 4), round(spec.stop, 4)))
    return events


def _frequency(rng: np.random.Generator, spec: SeizureSpec, t: np.ndarray, fs: float) -> np.ndarray:
    # The discharge's last samples can lie a fraction of a sample past `duration` (whole samples at
    # the file's rate); a negative base would make the power below NaN.
    u = np.clip(t / spec.duration, 0.0, 1.0)
    if spec.kind == "tonic_clonic":
        tonic = min(0.3 * spec.duration, 20.0)
        f_tonic = 18.0 - 8.0 * np.clip(t / tonic, 0, 1)
        clonic_u = np.clip((t - tonic) / max(spec.duration - tonic, 1.0), 0, 1)
        f_clonic = spec.f_end + (spec.f_start - spec.f_end) * (1 - clonic_u) ** 1.2
        f = np.where(t < tonic, f_tonic, f_clonic)
    else:
        f = spec.f_end + (spec.f_start - spec.f_end) * (1.0 - u) ** 1.3
    # Ictal rhythms are not clocks: the frequency wanders by ~10 % from second to second.
    jitter = 1.0 + 0.1 * slow_envelope(rng, t.size, fs, 0.5)[0]
    return np.maximum(f * jitter, 0.8)


def render(rng: np.random.Generator, potentials: np.ndarray, fs: float, spec: SeizureSpec) -> None:
    """Add one seizure (and its post-ictal state) to `potentials` (sites x samples), in place."""
    n_total = potentials.shape[1]
    a = round(spec.start * fs)
    b = min(round(spec.stop * fs), n_total)
    m = b - a
    if m <= 0:
        return
    t = np.arange(m, dtype=np.float64) / fs
    duration = spec.duration
    d = _distance(spec)
    lam = field_radius(spec, t)
    weight = np.exp(-((d[:, None] / lam[None, :]) ** 2)).astype(np.float32)  # sites x m

    f = _frequency(rng, spec, t, fs)
    phase = 2 * np.pi * np.cumsum(f) / fs
    # Each site sees the rhythm a little later the farther it is from the onset zone.
    lagged = phase[None, :] - (2 * np.pi * LAG_S_PER_UNIT) * d[:, None] * f[None, :]
    if spec.kind == "tonic_clonic":
        tonic = min(0.3 * duration, 20.0)
        morph = spec.spikiness * smoothstep((t - tonic) / 3.0)
    elif spec.kind == "absence":
        morph = np.ones_like(t)
    else:
        morph = spec.spikiness * smoothstep(t / (0.6 * duration))
    morph = morph.astype(np.float32)
    wave = (1 - morph) * _lookup(_RHYTHM, lagged) + morph * _lookup(_SPIKE_WAVE, lagged)

    lvfa_s = 0.0
    if spec.lvfa:
        lvfa_s = float(min(rng.uniform(2.0, 5.0), 0.25 * duration))
    if spec.kind == "absence":
        build = smoothstep(t / 0.4)
    elif spec.kind == "tonic_clonic":
        build = 0.35 + 0.65 * smoothstep((t - min(0.3 * duration, 20.0)) / 4.0)
        build = build * smoothstep((t - lvfa_s) / 2.0)
    else:
        build = 0.2 + 0.8 * smoothstep((t - lvfa_s) / (0.35 * duration))
        build = build * smoothstep((t - lvfa_s) / 1.5)
    ending = smoothstep((duration - t) / (0.3 if spec.kind == "absence" else 1.5))
    amplitude = (spec.amplitude_uv * build * ending).astype(np.float32)
    # Amplitude waxes and wanes over a few cycles, differently at each site.
    wobble = 1.0 + 0.25 * slow_envelope(rng, m, fs, 0.7, rows=len(SITES))

    segment = potentials[:, a:b]
    # The discharge takes over: the background it replaces fades where the field is strong.
    takeover = smoothstep(t / 2.0).astype(np.float32) * ending.astype(np.float32)
    segment *= 1.0 - 0.6 * weight * takeover
    segment += wave * weight * wobble * amplitude

    if lvfa_s > 0:
        k = int(lvfa_s * fs)
        fast = MIXING @ shaped_noise(rng, len(SITES), k, fs, peak(min(24.0, 0.3 * fs), 3.0))
        ramp = (smoothstep(t[:k] / 0.5) * smoothstep((lvfa_s - t[:k]) / 1.0)).astype(np.float32)
        segment[:, :k] *= 1.0 - 0.5 * weight[:, :k] * ramp  # electrodecremental onset
        segment[:, :k] += fast * weight[:, :k] * (np.float32(rng.uniform(8.0, 15.0)) * ramp)

    if spec.kind == "tonic_clonic":
        _add_muscle(rng, segment, fs, t, f, phase, duration)

    if spec.postictal_s > 0 and b < n_total:
        _postictal(rng, potentials, fs, spec, b, weight[:, -1])


def _add_muscle(rng: np.random.Generator, segment: np.ndarray, fs: float, t: np.ndarray,
                f: np.ndarray, phase: np.ndarray, duration: float) -> None:
    """Generalised EMG: continuous in the tonic phase, in bursts locked to the clonic jerks."""
    tonic = min(0.3 * duration, 20.0)
    emg = shaped_noise(rng, len(SITES), t.size, fs, band(25.0, min(90.0, 0.4 * fs), 8.0))
    lateral = (0.5 + 0.5 * np.abs(XY[:, 0])).astype(np.float32)
    gate = ((1 + np.cos(phase)) / 2) ** 4
    fade = 1.0 - 0.6 * np.clip((t - tonic) / max(duration - tonic, 1.0), 0, 1)
    envelope = np.where(t < tonic, smoothstep(t / 3.0), gate * fade) * smoothstep((duration - t) / 1.0)
    segment += emg * lateral[:, None] * (np.float32(rng.uniform(40.0, 90.0)) * envelope.astype(np.float32))


def _postictal(rng: np.random.Generator, potentials: np.ndarray, fs: float, spec: SeizureSpec,
               b: int, weight: np.ndarray) -> None:
    """Suppression, then polymorphic delta slowing, over the region the seizure ended in."""
    n = min(int(spec.postictal_s * fs), potentials.shape[1] - b)
    if n <= 0:
        return
    tp = np.arange(n, dtype=np.float64) / fs
    depth = 0.85 if spec.kind == "tonic_clonic" else 0.6
    suppression = 1.0 - depth * np.exp(-tp / (0.25 * spec.postictal_s))
    region = weight[:, None]
    potentials[:, b:b + n] *= (1.0 - region * (1.0 - suppression.astype(np.float32)))
    delta = MIXING @ shaped_noise(rng, len(SITES), n, fs, band(0.7, 2.5, 0.4))
    envelope = smoothstep(tp / (0.15 * spec.postictal_s)) * np.exp(-tp / (0.45 * spec.postictal_s))
    potentials[:, b:b + n] += delta * region * (np.float32(spec.postictal_uv) * envelope.astype(np.float32))
