"""Background EEG at every scalp site: spatially correlated 1/f activity and the cerebral rhythms.

Models: 1/f^β background whose correlation falls with inter-electrode distance (volume
conduction); a posterior alpha rhythm (waxing and waning, blocked in eyes-open stretches,
left/right highly but not perfectly coherent); low-amplitude fronto-central beta; diffuse theta
when alpha drops out (drowsiness); slow fluctuations of overall amplitude.
"""

from __future__ import annotations

import numpy as np

from szflow.synth.channels import DISTANCE, SITE_INDEX, SITES, XY
from szflow.synth.noise import peak, pink, shaped_noise, slow_envelope, smoothstep
from szflow.synth.plan import PatientTraits

# Correlation length of the background field (scalp units; head radius = 1): neighbours about
# 0.45 apart correlate ~0.6, opposite sides ~0.1, as referential EEG does.
CORRELATION_LENGTH = 0.9
# Share of each site's background that is its own (not volume-conducted from the field).
LOCAL_SHARE = 0.12

_ALPHA_WEIGHTS = {"O1": 1.0, "O2": 1.0, "P3": 0.6, "P4": 0.6, "PZ": 0.65, "T5": 0.55, "T6": 0.55,
                  "C3": 0.2, "C4": 0.2, "CZ": 0.2, "T3": 0.15, "T4": 0.15, "A1": 0.1, "A2": 0.1}
_BETA_WEIGHTS = {"F3": 1.0, "F4": 1.0, "FZ": 1.0, "C3": 0.8, "C4": 0.8, "CZ": 0.9, "FP1": 0.6, "FP2": 0.6,
                 "F7": 0.6, "F8": 0.6}


def _site_weights(weights: dict[str, float], default: float) -> np.ndarray:
    return np.array([weights.get(site, default) for site in SITES], dtype=np.float32)


def _mixing() -> np.ndarray:
    corr = (1.0 - LOCAL_SHARE) * np.exp(-DISTANCE / CORRELATION_LENGTH) + LOCAL_SHARE * np.eye(len(SITES))
    return np.linalg.cholesky(corr).astype(np.float32)


MIXING = _mixing()
_LEFT = (XY[:, 0] < -0.05).astype(np.float32)
_RIGHT = (XY[:, 0] > 0.05).astype(np.float32)


def background(rng: np.random.Generator, n: int, fs: float, traits: PatientTraits) -> np.ndarray:
    """(len(SITES), n) float32 microvolts: the scalp potential of a resting, awake-to-drowsy patient.

    Every component is a few source series times a spatial pattern, so the whole field is one
    matrix product (sites x sources) @ (sources x samples).
    """
    sites = len(SITES)
    site_gain = rng.uniform(0.85, 1.15, size=(sites, 1)).astype(np.float32)
    pink_field = MIXING * (site_gain * np.float32(traits.background_uv))
    sources = [shaped_noise(rng, sites, n, fs, pink(traits.exponent))]
    # Vigilance drifts over tens of seconds: overall amplitude follows, a little.
    sources[0] *= 1.0 + 0.12 * slow_envelope(rng, n, fs, 1.0 / 40.0)[0]

    # Alpha: two generators, left and right, coherent but not identical; blocked when the eyes
    # are open (envelope near 0.15), full when closed.
    alpha = shaped_noise(rng, 2, n, fs, peak(traits.alpha_hz, 0.35))
    eyes = slow_envelope(rng, n, fs, 1.0 / 25.0)[0]
    closed = 0.15 + 0.85 * smoothstep(0.5 + 0.9 * eyes)
    alpha *= closed
    sources.append(alpha)
    weights = _site_weights(_ALPHA_WEIGHTS, 0.05) * np.float32(traits.alpha_uv)
    midline = 1.0 - _LEFT - _RIGHT
    alpha_field = np.stack([
        weights * (_LEFT + 0.85 * _RIGHT + 0.925 * midline),
        weights * (0.53 * _RIGHT + 0.265 * midline),
    ], axis=1)

    sources.append(shaped_noise(rng, 1, n, fs, peak(20.0, 4.0)))
    beta_field = (_site_weights(_BETA_WEIGHTS, 0.3) * np.float32(rng.uniform(1.5, 3.5)))[:, None]

    # Drowsiness: where alpha fades, diffuse theta grows; a few broad generators are enough.
    centers = rng.integers(0, sites, size=4)
    theta_field = np.exp(-((DISTANCE[:, centers] / 0.9) ** 2)).astype(np.float32)
    theta = shaped_noise(rng, 4, n, fs, peak(5.5, 1.0))
    theta *= np.float32(rng.uniform(3.0, 8.0)) * np.clip(0.6 - closed, 0.0, None)
    sources.append(theta)

    mixing = np.concatenate([pink_field, alpha_field, beta_field, theta_field], axis=1).astype(np.float32)
    return mixing @ np.concatenate(sources, axis=0)


def site(name: str) -> int:
    return SITE_INDEX[name]
