"""The shared inference path: whole recordings -> one stitched probability track each."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from szflow.cache import InferenceWindows, SplitStore
from szflow.config import load_params
from szflow.errors import SzflowError
from szflow.inference import autocast, predict_tracks, resolve_device, resolve_precision
from szflow.model import Detector
from szflow.train.toy import write_toy_store

REPO = Path(__file__).resolve().parents[1]

WINDOW_S, OVERLAP_S = 4.0, 1.0
DURATIONS = {"short": 2.7, "exact": 4.0, "long": 11.3}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    recordings = [
        {"recording_id": name, "patient": f"p{i}", "duration_s": d,
         "seizure_intervals": [[1.0, 2.0]] if name == "long" else []}
        for i, (name, d) in enumerate(DURATIONS.items())
    ]
    write_toy_store(root, "dev", recordings)
    return SplitStore.open(root, "dev")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = load_params(REPO, overrides={"model.n_layers": 1, "model.d_model": 16, "model.d_state": 4,
                                       "model.encoder_channels": [8, 16], "model.chunk_size": 16,
                                       "model.dropout": 0.0}).model
    return Detector(cfg, mamba_impl="torch").eval()


def _predict(model, store, ids, batch_size=8, **kwargs):
    return predict_tracks(model, store, ids, window_s=WINDOW_S, overlap_s=OVERLAP_S, batch_size=batch_size,
                          device="cpu", precision="fp32", frame_rate_hz=4.0, progress=False, **kwargs)


def _direct(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(x)[None])).numpy()[0]


def test_one_track_per_recording_with_reference_and_duration(model, store):
    tracks = _predict(model, store, list(DURATIONS))
    assert [t.recording_id for t in tracks] == list(DURATIONS)
    for track in tracks:
        n = store.length(track.recording_id)
        assert track.probabilities.shape == (-(-n // 64),)
        assert track.probabilities.dtype == np.float32
        assert ((track.probabilities > 0) & (track.probabilities < 1)).all()
        assert track.frame_rate_hz == 4.0
        assert track.duration_s == pytest.approx(DURATIONS[track.recording_id], abs=1 / 256)
    assert tracks[2].reference == [(1.0, 2.0)] and tracks[0].reference == []


def test_short_recording_is_padded_and_masked(model, store):
    """A recording shorter than a window scores as if the network saw exactly the recording."""
    (track,) = _predict(model, store, ["short"])
    expected = _direct(model, store.recording("short").x)
    np.testing.assert_allclose(track.probabilities, expected, rtol=1e-5, atol=1e-6)


def test_long_recording_is_stitched_from_nearest_window_centres(model, store):
    (track,) = _predict(model, store, ["long"])
    windows = InferenceWindows(store, ["long"], window_s=WINDOW_S, overlap_s=OVERLAP_S)
    assert len(windows) >= 3
    per_window = []
    for row, start in windows:
        # The last window runs past the end: its masked padding must act as if it were not there.
        n = min(windows.window, store.length(row) - start)
        probs = _direct(model, store.window(row, start, n).x)
        per_window.append(np.pad(probs, (0, windows.window // 64 - len(probs))))
    expected = windows.stitch("long", np.stack(per_window), 4.0)
    np.testing.assert_allclose(track.probabilities, expected, rtol=1e-5, atol=1e-6)
    # Every frame comes from one whole-window pass: the exact-length recording needs no stitching.
    (exact,) = _predict(model, store, ["exact"])
    np.testing.assert_allclose(exact.probabilities, _direct(model, store.recording("exact").x), rtol=1e-5,
                               atol=1e-6)


def test_batch_size_and_recording_order_do_not_change_tracks(model, store):
    a = _predict(model, store, list(DURATIONS), batch_size=1)
    b = _predict(model, store, list(reversed(DURATIONS)), batch_size=5)
    by_id = {t.recording_id: t.probabilities for t in b}
    for track in a:
        np.testing.assert_allclose(track.probabilities, by_id[track.recording_id], rtol=1e-5, atol=1e-6)


def test_model_mode_is_restored(model, store):
    model.train()
    try:
        _predict(model, store, ["exact"])
        assert model.training
    finally:
        model.eval()
    assert _predict(model, store, []) == []


def test_resolve_device_and_autocast():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SzflowError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(SzflowError, match="not one of"):
        resolve_device("tpu")
    with autocast("cpu", "fp32"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(SzflowError, match="precision"):
        autocast("cpu", "fp8")


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_native_bf16(monkeypatch, caplog, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    with autocast("cpu", "auto"):
        dtype = torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype
    assert dtype == (torch.bfloat16 if native else torch.float32)
    # An explicit precision is kept; bf16 without native support is only slow, so it is logged.
    assert resolve_precision("fp32", "cpu") == "fp32"
    with caplog.at_level(logging.WARNING, logger="szflow.inference"):
        assert resolve_precision("bf16", "cpu") == "bf16"
    assert ("no native bf16" in caplog.text) is (not native)
    with pytest.raises(SzflowError, match="not one of auto"):
        resolve_precision("fp8", "cpu")
