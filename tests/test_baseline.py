"""Classical baseline: features, logistic fit, JSON round trip, tracks for the shared scorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from szflow.baseline import (
    BANDS_HZ,
    Baseline,
    band_log_power,
    baseline_scores,
    baseline_tracks,
    feature_names,
    fit_baseline,
    frame_auroc,
    frame_features,
    load_baseline,
    save_baseline,
)
from szflow.cache import SplitStore
from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.scoring import auroc

RATE_HZ = load_params(Path(__file__).resolve().parents[1]).preprocess.sample_rate_hz


@pytest.fixture(scope="module")
def store(tmp_path_factory, write_toy_store, toy_recordings):
    root = tmp_path_factory.mktemp("cache")
    # Weaker seizures than the training toy, so the fit has something to do.
    write_toy_store(root, "train", toy_recordings(n_patients=6, duration_s=60.0, seizure_s=15.0),
                    seizure_amplitude=1.0)
    return SplitStore.open(root, "train")


def test_baseline_fits_and_separates_a_toy_seizure_set(store, tmp_path):
    ids = store.recording_ids
    fit_ids, held_out = ids[:8], ids[8:]
    baseline = fit_baseline(store, fit_ids, frame_rate_hz=4.0)
    assert baseline.fit_info["recordings"] == 8 and baseline.fit_info["seizure_frames"] > 0
    assert baseline.fit_info["train_frame_auroc"] > 0.95
    assert baseline.sample_rate_hz == store.sample_rate_hz  # the rate of the EEG it was fitted on
    tracks = baseline_tracks(store, held_out, baseline, frame_rate_hz=4.0)
    assert [t.recording_id for t in tracks] == held_out
    for track in tracks:
        assert len(track.probabilities) == -(-store.length(track.recording_id) // 64)
        assert track.probabilities.dtype == np.float32
        assert 0.0 <= track.probabilities.min() and track.probabilities.max() <= 1.0
    assert auroc(tracks) > 0.95  # the same frame AUROC the network is judged by

    save_baseline(tmp_path / "baseline.json", baseline)
    loaded = load_baseline(tmp_path / "baseline.json")
    assert loaded == baseline
    signal = store.recording(held_out[0]).x
    np.testing.assert_array_equal(baseline_scores(signal, loaded), baseline_scores(signal, baseline))


def test_features_are_per_frame_and_finite():
    rng = np.random.default_rng(0)
    for n in (1, 63, 64, 65, 256 * 10 + 7):
        signal = rng.standard_normal((19, n)).astype(np.float32)
        features = frame_features(signal, 4.0, sample_rate_hz=RATE_HZ)
        assert features.shape == (max(1, -(-n // 64)), len(feature_names()))
        assert np.isfinite(features).all()
    flat = frame_features(np.zeros((19, 2560), np.float32), 4.0, sample_rate_hz=RATE_HZ)
    assert np.isfinite(flat).all()


def test_bad_baseline_files_are_clear_errors(tmp_path):
    with pytest.raises(SzflowError, match="not found"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SzflowError, match="unreadable"):
        load_baseline(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SzflowError, match="not an szflow baseline"):
        load_baseline(tmp_path / "other.json")
    good = Baseline(feature_names(), [0.0] * 14, [1.0] * 14, [0.0] * 14, 0.0, 4.0, RATE_HZ).to_json()
    good["weights"] = [0.0]
    (tmp_path / "short.json").write_text(json.dumps(good))
    with pytest.raises(SzflowError, match="differ in length"):
        load_baseline(tmp_path / "short.json")


def test_baseline_refuses_another_frame_rate(store):
    baseline = Baseline(feature_names(), [0.0] * 14, [1.0] * 14, [0.0] * 14, 0.0, 4.0, RATE_HZ)
    with pytest.raises(SzflowError, match="4.0 Hz"):
        baseline_tracks(store, store.recording_ids[:1], baseline, frame_rate_hz=8.0)


def test_frame_auroc():
    labels = np.array([0, 0, 1, 1], bool)
    assert frame_auroc(np.array([0.1, 0.2, 0.3, 0.4]), labels) == 1.0
    assert frame_auroc(np.ones(4), labels) == 0.5
    assert np.isnan(frame_auroc(np.ones(4), np.zeros(4, bool)))


def _band_log_power_per_channel(context, n_frames, spf, win, sample_rate_hz):
    """The definition band_log_power vectorises: per channel, every frame's Hann-windowed FFT at once,
    each band's power as the mean over its boolean bin mask."""
    taper = np.hanning(win).astype(np.float32)
    freqs = np.fft.rfftfreq(win, 1.0 / sample_rate_hz)
    out = np.empty((len(BANDS_HZ), context.shape[0], n_frames))
    for ch in range(context.shape[0]):
        frames = np.lib.stride_tricks.sliding_window_view(context[ch], win)[::spf][:n_frames]
        power = np.abs(np.fft.rfft(frames * taper, axis=1)) ** 2
        for b, (lo, hi) in enumerate(BANDS_HZ.values()):
            out[b, ch] = np.log(power[:, (freqs >= lo) & (freqs < hi)].mean(axis=1) + 1e-6)
    return out


@pytest.mark.parametrize("n_frames", [1, 127, 128, 300])  # one block, block edges, several blocks
def test_blocked_band_power_equals_the_per_channel_definition(n_frames):
    spf, win = RATE_HZ // 4, RATE_HZ
    context = np.random.default_rng(n_frames).normal(0, 1, (19, (n_frames - 1) * spf + win)).astype(np.float32)
    blocked = band_log_power(context, n_frames, spf, win, RATE_HZ)
    assert blocked.shape == (len(BANDS_HZ), 19, n_frames)
    # Batched and single FFTs may round differently (SIMD across rows): log powers agree to ~1e-6.
    np.testing.assert_allclose(blocked, _band_log_power_per_channel(context, n_frames, spf, win, RATE_HZ),
                               rtol=0, atol=1e-5)
