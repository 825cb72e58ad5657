"""Signal processing: amplitude and phase survive montage, resampling and filtering; 60 Hz is
removed; labels line up with the resampled signal to the sample; normalisation is robust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from szflow.config import load_params
from szflow.data.edf import ELECTRODES, EegRecording
from szflow.data.electrodes import resolve_montage
from szflow.errors import ConfigError, InputFileError
from szflow.signal.chain import preprocess_recording
from szflow.signal.filters import design_filter, zero_phase_filter
from szflow.signal.labels import frame_labels, interval_samples, seizure_mask
from szflow.signal.montage import common_average_reference
from szflow.signal.normalise import IQR_TO_SIGMA, channel_stats, normalise, quartiles
from szflow.signal.resample import rational_ratio, resample_channels

FS = 256
RATES = [250, 256, 400, 512, 1000]
CFG = load_params(Path(__file__).resolve().parents[1]).preprocess


def _recording(signals, rates, path="mem.edf") -> EegRecording:
    duration = len(signals[0]) / rates[0]
    return EegRecording(path=path, signals=[np.asarray(s, np.float32) for s in signals],
                        sample_rates=[float(r) for r in rates], duration_s=duration, labels=list(ELECTRODES),
                        montage=resolve_montage(ELECTRODES))


def _sine_block(rate: float, seconds: float, freq: float, amplitude: float, channel: int) -> list[np.ndarray]:
    t = np.arange(round(seconds * rate)) / rate
    signals = [np.zeros_like(t, dtype=np.float32) for _ in range(19)]
    signals[channel] = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return signals


def _fit_sine(y: np.ndarray, freq: float, fs: float, start: int) -> tuple[float, float]:
    """Amplitude and time shift (s) of a sine at `freq` in y, where y[k] is at time (start + k) / fs."""
    t = (start + np.arange(len(y))) / fs
    design = np.column_stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)])
    (a, b), *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    # a sin + b cos = A sin(w t + phi); a delay d gives phi = -w d
    return float(np.hypot(a, b)), float(-np.arctan2(b, a) / (2 * np.pi * freq))


@pytest.mark.parametrize(("rate", "expected"), [(250, (128, 125)), (256, (1, 1)), (400, (16, 25)),
                                                 (512, (1, 2)), (1000, (32, 125)), (249.99999, (128, 125))])
def test_rational_ratio(rate, expected):
    assert rational_ratio(rate, FS) == expected


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("freq", [3.0, 10.0, 40.0])
def test_sine_survives_car_resampling_and_filtering(rate, freq):
    channel, amplitude = 5, 50.0
    block = resample_channels(_sine_block(rate, 30, freq, amplitude, channel), [rate] * 19, FS)
    assert block.dtype == np.float32 and block.shape == (19, 30 * FS)
    common_average_reference(block)
    sos = design_filter(float(FS), CFG.bandpass_hz, CFG.bandpass_order, CFG.notch_hz, CFG.notch_quality)
    out = zero_phase_filter(block, sos)
    assert out.dtype == np.float32
    interior = slice(5 * FS, 25 * FS)  # away from the edge transients of the 0.5 Hz high-pass
    amp, shift = _fit_sine(out[channel, interior], freq, FS, interior.start)
    assert amp == pytest.approx(amplitude * 18 / 19, rel=0.02)
    assert abs(shift) < 0.1 / FS  # zero phase: far below one sample
    other_amp, other_shift = _fit_sine(-out[0, interior], freq, FS, interior.start)
    assert other_amp == pytest.approx(amplitude / 19, rel=0.02)
    assert abs(other_shift) < 0.1 / FS


@pytest.mark.parametrize("notch", [60.0, 50.0])
def test_line_noise_is_removed(notch):
    t = np.arange(30 * FS) / FS
    line = 100 * np.sin(2 * np.pi * notch * t)
    alpha = 20 * np.sin(2 * np.pi * 10 * t)
    block = np.tile((line + alpha).astype(np.float32), (19, 1))
    sos = design_filter(float(FS), (0.5, 120.0), 4, notch, 30.0)
    out = zero_phase_filter(block, sos)
    interior = slice(5 * FS, 25 * FS)
    line_amp, _ = _fit_sine(out[3, interior], notch, FS, interior.start)
    alpha_amp, _ = _fit_sine(out[3, interior], 10.0, FS, interior.start)
    assert line_amp < 0.01 * 100
    assert alpha_amp == pytest.approx(20, rel=0.02)


def test_no_notch_keeps_line_frequency():
    sos = design_filter(float(FS), (0.5, 120.0), 4, None, 30.0)
    t = np.arange(20 * FS) / FS
    out = zero_phase_filter(np.tile(np.sin(2 * np.pi * 60 * t).astype(np.float32), (2, 1)), sos)
    amp, _ = _fit_sine(out[0, 5 * FS:15 * FS], 60.0, FS, 5 * FS)
    assert amp == pytest.approx(1.0, rel=0.02)


def test_bandpass_edge_must_be_below_nyquist():
    assert design_filter(256.0, (0.5, 120.0), 4, 60.0, 30.0).dtype == np.float32  # 120 < 128 is valid
    with pytest.raises(ConfigError, match="Nyquist"):
        design_filter(200.0, (0.5, 120.0), 4, 60.0, 30.0)


def test_mixed_rates_give_one_aligned_block():
    rates = [250] * 10 + [500] * 5 + [1000] * 4
    signals = []
    for rate in rates:
        t = np.arange(20 * rate) / rate
        signals.append(np.sin(2 * np.pi * 7 * t).astype(np.float32))
    block = resample_channels(signals, rates, FS)
    assert block.shape == (19, 20 * FS)
    # Every channel holds the same sine on the same time grid.
    np.testing.assert_allclose(block[:, 100:-100], np.tile(block[0, 100:-100], (19, 1)), atol=2e-3)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("onset_s", [3.0, 7.31, 12.8868])
def test_labels_line_up_with_resampled_step(rate, onset_s):
    n_in = 20 * rate
    first_one = int(np.ceil(onset_s * rate - 1e-9))
    step = np.zeros(n_in, np.float32)
    step[first_one:] = 100.0
    out = resample_channels([step] * 19, [rate] * 19, FS)[0]
    crossing = int(np.argmax(out >= 50.0))  # first output sample past half the step
    mask = seizure_mask([(onset_s, 18.0)], out.shape[0], FS)
    onset_sample = int(np.argmax(mask))
    assert onset_sample == int(np.ceil(onset_s * FS - 1e-9))
    assert abs(crossing - onset_sample) <= 1


def test_pipeline_output_and_mask_share_the_grid():
    rate, seconds = 250, 40
    rng = np.random.default_rng(0)
    signals = [rng.normal(0, 30, seconds * rate).astype(np.float32) for _ in range(19)]
    out = preprocess_recording(_recording(signals, [rate] * 19), CFG)
    assert out.dtype == np.float32 and out.shape == (19, seconds * FS)
    assert np.abs(out).max() <= CFG.clip
    mask = seizure_mask([(10.0, 20.0)], out.shape[1], FS)
    assert mask.shape == (out.shape[1],) and mask.dtype == np.uint8
    assert mask.sum() == 10 * FS and mask[10 * FS] == 1 and mask[10 * FS - 1] == 0 and mask[20 * FS] == 0


def test_too_short_recording_is_an_input_error():
    signals = [np.zeros(10, np.float32)] * 19
    with pytest.raises(InputFileError, match="too short"):
        preprocess_recording(_recording(signals, [256] * 19, path="short.edf"), CFG)


def test_interval_samples_rounding_and_clipping():
    assert interval_samples([(2.5, 3.0)], 10_000, 256) == [(640, 768)]
    # 36.8868 s * 256 = 9443.02 -> sample 9444 is the first at or after the onset
    assert interval_samples([(36.8868, 40.0)], 20_000, 256) == [(9444, 10240)]
    assert interval_samples([(-1.0, 1.0), (50.0, 60.0)], 512, 256) == [(0, 256)]
    assert seizure_mask([], 5, 256).tolist() == [0] * 5


def test_frame_labels():
    mask = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0], np.uint8)
    assert frame_labels(mask, 4, "any").tolist() == [1, 1, 0]
    assert frame_labels(mask, 4, "majority").tolist() == [0, 1, 0]
    with pytest.raises(ValueError):
        frame_labels(mask, 5)


@pytest.mark.parametrize("method", ["median_iqr", "mean_std"])
def test_normalisation_is_robust_and_clipped(method):
    rng = np.random.default_rng(1)
    block = rng.normal(100.0, 50.0, (3, 60 * FS)).astype(np.float32)
    block[1] = 0.0  # a flat channel stays finite
    block[2, ::500] = 1e5  # electrode pops
    stats = normalise(block, method, clip=10.0)
    assert np.isfinite(block).all() and np.abs(block).max() <= 10.0
    assert np.all(block[1] == 0.0)
    assert float(np.median(block[0])) == pytest.approx(0.0, abs=0.02)
    assert float(block[0].std()) == pytest.approx(1.0, rel=0.03)
    if method == "median_iqr":
        # The pops barely move the robust scale, and the IQR is scaled to sigma.
        assert float(stats.scale[2]) == pytest.approx(50.0, rel=0.03)
        q25, q75 = np.quantile(block[0], [0.25, 0.75])
        assert (q75 - q25) == pytest.approx(IQR_TO_SIGMA, rel=0.03)


def test_channel_stats_short_block_uses_every_sample():
    block = np.arange(12, dtype=np.float32).reshape(2, 6)
    stats = channel_stats(block, "mean_std")
    np.testing.assert_allclose(stats.centre, [2.5, 8.5])


def test_long_recording_statistics_match_full_quantiles():
    rng = np.random.default_rng(2)
    n = 40 * 60 * FS  # 40 min: statistics from 128 spread 1 s blocks
    t = np.arange(n) / FS
    block = (rng.normal(0, 30, (2, n)) + 40 * np.sin(2 * np.pi * 10 * t)
             + np.linspace(0, 20, n)).astype(np.float32)  # a slow drift: blocks must span the whole recording
    full_q25, full_q50, full_q75 = np.quantile(block, [0.25, 0.5, 0.75], axis=1)
    stats = channel_stats(block, "median_iqr")
    np.testing.assert_allclose(stats.centre, full_q50, atol=0.02 * 30)
    np.testing.assert_allclose(stats.scale, (full_q75 - full_q25) / IQR_TO_SIGMA, rtol=0.02)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 101, 4096])
def test_quartiles_match_numpy_lower(n):
    sample = np.random.default_rng(n).normal(0, 1, (3, n)).astype(np.float32)
    expected = np.quantile(sample, [0.25, 0.5, 0.75], axis=1, method="lower")
    for got, want in zip(quartiles(sample.copy()), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_samples", [40, 1000, 256 * 70 + 3])
@pytest.mark.parametrize("n_channels", [1, 19, 23])
def test_forward_backward_filter_matches_scipy_sosfiltfilt(n_samples, n_channels):
    from scipy.signal import sosfiltfilt

    rng = np.random.default_rng(n_samples + n_channels)
    block = (rng.normal(0, 30, (n_channels, n_samples)) + rng.normal(0, 50, (n_channels, 1))).astype(np.float32)
    sos = design_filter(float(FS), (0.5, 120.0), 4, 60.0, 30.0)
    ours = zero_phase_filter(block, sos)
    reference = sosfiltfilt(sos.astype(np.float64), block.astype(np.float64), axis=-1)
    assert ours.dtype == np.float32 and ours.shape == block.shape and ours.flags.c_contiguous
    # float32 rounding only: the same filter, padding and initial conditions as scipy.
    assert np.abs(ours - reference).max() < 1e-4 * np.abs(reference).max() + 1e-3


def test_forward_backward_filter_refuses_too_short_input():
    sos = design_filter(float(FS), (0.5, 120.0), 4, 60.0, 30.0)
    with pytest.raises(ValueError, match="too few"):
        zero_phase_filter(np.zeros((19, 33), np.float32), sos)
