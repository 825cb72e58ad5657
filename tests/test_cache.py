"""The cache store, the training sampler, inference windows + stitching, datasets and loaders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from szflow.cache import CacheError, InferenceWindows, SplitStore, TrainingWindowSampler, build_cache
from szflow.cache.dataset import (
    InferenceWindowDataset,
    TrainingWindowDataset,
    dataloader_kwargs,
    make_dataloader,
)
from szflow.cache.sampler import BACKGROUND, HARD_BACKGROUND, PARTIAL, SEIZURE, class_runs, window_class
from szflow.config import HardwareConfig, load_params
from szflow.errors import SzflowError
from szflow.signal.jobs import REPORT_COLUMNS, write_recording, write_run_summary
from szflow.signal.labels import seizure_mask

ROOT = Path(__file__).resolve().parents[1]
PREPROCESS = load_params(ROOT).preprocess
FS = PREPROCESS.sample_rate_hz
WINDOW = 60 * FS
PARAMS_HASH = "test-hash"

# recording id -> (seconds, seizure intervals)
RECORDINGS = {
    "rec_a": (300.0, [(30.0, 100.0)]),
    "rec_b": (45.5, [(5.0, 20.0)]),  # shorter than one window
    "rec_c": (600.0, []),
    "rec_d": (60.0, [(50.0, 60.0)]),  # exactly one window
    "rec_e": (131.3, [(10.0, 12.0), (70.0, 80.0), (81.0, 125.0)]),
}

# Recordings with electrodes missing (the rest have all 19): PZ absent from rec_c.
PRESENT = {"rec_c": "1" * 18 + "0"}


def write_preprocess(out, recordings=RECORDINGS, split="train", params_hash=PARAMS_HASH, seed=0):
    """Preprocess-stage outputs without EDFs: random signals, given seizure intervals."""
    rng = np.random.default_rng(seed)
    arrays, rows = {}, []
    for rid, (seconds, intervals) in recordings.items():
        n = round(seconds * FS)
        block = rng.normal(0, 1, (19, n)).astype(np.float16)
        meta = {"recording_id": rid, "split": split, "patient": f"p_{rid}", "session": "s001",
                "montage": "01_tcp_ar", "duration_s": seconds, "n_samples": n,
                "seizure_intervals": [list(i) for i in intervals], "seizure_types": ["fnsz"] if intervals else [],
                "params_hash": params_hash, "present": PRESENT.get(rid, "1" * 19), "offset_s": 0.0}
        write_recording(out, meta, block)
        arrays[rid] = block
        rows.append({**dict.fromkeys(REPORT_COLUMNS, ""), "recording_id": rid, "split": split,
                     "status": "ok", "resumed": False, "n_samples": n})
    rows.append({**dict.fromkeys(REPORT_COLUMNS, ""), "recording_id": "broken", "split": split,
                 "status": "failed", "reason": "truncated", "resumed": False, "n_samples": 0})
    write_run_summary(out, pd.DataFrame(rows, columns=REPORT_COLUMNS), PREPROCESS, params_hash)
    return arrays


@pytest.fixture
def built(tmp_path):
    arrays = write_preprocess(tmp_path / "pre")
    build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    return SplitStore.open(tmp_path / "cache", "train"), arrays


def hardware(hw: str, **changes) -> HardwareConfig:
    """The `hw` profile with `changes` (hardware keys), validated like the file."""
    overrides = {f"hardware.{key}": value for key, value in changes.items()}
    return load_params(ROOT, hw=hw, overrides=overrides).hardware


# ----------------------------------------------------------------------------- store
def test_store_layout_and_index(built, tmp_path):
    store, _arrays = built
    assert store.recording_ids == sorted(RECORDINGS)  # failed recordings are left out
    index = store.index
    assert list(index["offset"]) == list(np.concatenate(([0], np.cumsum(index["length"])[:-1])))
    assert store.seizure_intervals("rec_e") == [(10.0, 12.0), (70.0, 80.0), (81.0, 125.0)]
    assert index.set_index("recording_id").loc["rec_a", "seizure_types"] == ["fnsz"]
    # The presence mask of each recording travels from the preprocess metadata to the index.
    np.testing.assert_array_equal(store.present("rec_c"), [True] * 18 + [False])
    assert store.present("rec_a").all() and store.present(0).dtype == bool
    signals = np.load(tmp_path / "cache" / "train" / "signals.npy", mmap_mode="r")
    assert signals.dtype == np.float16 and signals.shape == (19, store.total_samples)
    # Under 40 MB per hour of EEG: 19 float16 + 1 uint8 per sample, 35.9 MB/h.
    assert store.manifest["bytes_per_hour"] <= 40e6


def test_windows_equal_preprocessed_arrays(built):
    store, arrays = built
    for rid, block in arrays.items():
        n = block.shape[1]
        x, y, valid, _ = store.recording(rid)
        np.testing.assert_array_equal(x, block.astype(np.float32))
        assert x.dtype == np.float32 and x.flags.c_contiguous
        np.testing.assert_array_equal(y, seizure_mask(RECORDINGS[rid][1], n, FS))
        assert valid.all()
        if n > 1000:
            x, y, valid, _ = store.window(rid, 300, 700)
            np.testing.assert_array_equal(x, block[:, 300:1000].astype(np.float32))


def test_window_past_the_end_is_zero_padded_with_mask(built):
    store, arrays = built
    block = arrays["rec_b"]
    n = block.shape[1]
    x, y, valid, _ = store.window("rec_b", 0, WINDOW)
    assert x.shape == (19, WINDOW) and y.shape == valid.shape == (WINDOW,)
    np.testing.assert_array_equal(x[:, :n], block.astype(np.float32))
    assert not x[:, n:].any() and not y[n:].any()
    assert valid[:n].all() and not valid[n:].any()
    # Before the start too, and never samples of the neighbouring recording.
    x, _, valid, _ = store.window(1, -10, 20)
    np.testing.assert_array_equal(x[:, 10:], block[:, :10].astype(np.float32))
    assert not x[:, :10].any() and valid.tolist() == [False] * 10 + [True] * 10


def test_presence_comes_from_the_index_and_defaults_to_all_electrodes(built):
    store, _ = built
    assert store.present("rec_a").dtype == bool and store.present("rec_a").all()
    # An index without the column (a store built in memory, e.g. by tests): every electrode present.
    bare = SplitStore(store.split_dir, store.manifest, store.index.drop(columns="present"))
    assert bare.present("rec_a").all()
    assert store.window("rec_a", 0, 10).present.shape == (19,)
    flags = "1" * 17 + "01"
    index = store.index.assign(present=[flags] * len(store))
    partial = SplitStore(store.split_dir, store.manifest, index)
    partial._open_arrays()
    want = np.array([c == "1" for c in flags])
    np.testing.assert_array_equal(partial.present(0), want)
    np.testing.assert_array_equal(partial.window("rec_b", 0, WINDOW).present, want)
    with pytest.raises(CacheError, match="present"):
        SplitStore(store.split_dir, store.manifest, store.index.assign(present=["1" * 18] * len(store)))


def test_store_pickles_without_data(built):
    store, _ = built
    blob = pickle.dumps(store)
    assert len(blob) < 100_000
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.window("rec_c", 100, 50).x, store.window("rec_c", 100, 50).x)


def test_rebuild_same_inputs_is_a_noop_and_mismatch_refuses(tmp_path, built):
    cache = tmp_path / "cache" / "train"
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    write_preprocess(tmp_path / "pre", params_hash="other-hash", seed=1)
    with pytest.raises(CacheError, match="never deleted automatically"):
        build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before


def test_open_refuses_missing_or_mismatched(tmp_path, built):
    with pytest.raises(CacheError, match="no cache for split 'dev'"):
        SplitStore.open(tmp_path / "cache", "dev")
    with pytest.raises(CacheError, match="preprocess params"):
        SplitStore.open(tmp_path / "cache", "train", expected_params_hash="something-else")


def test_interrupted_build_leaves_no_cache(tmp_path, monkeypatch):
    write_preprocess(tmp_path / "pre")
    from szflow.cache import build

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "_write_rows", explode)
    with pytest.raises(RuntimeError):
        build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    assert not any((tmp_path / "cache" / "train").iterdir())  # temp files removed, nothing renamed
    monkeypatch.undo()
    build_cache(tmp_path / "pre", tmp_path / "cache", progress=False)
    assert len(SplitStore.open(tmp_path / "cache", "train")) == len(RECORDINGS)


# ----------------------------------------------------------------------------- sampler
def _brute_force_runs(length, window, spans):
    classes = []
    if length <= window:
        count = sum(min(b, length) - a for a, b in spans)
        return [window_class(count, length)]
    mask = np.zeros(length, np.int64)
    for a, b in spans:
        mask[a:b] = 1
    cumulative = np.concatenate(([0], np.cumsum(mask)))
    for s in range(length - window + 1):
        classes.append(window_class(int(cumulative[s + window] - cumulative[s]), window))
    return classes


def test_class_runs_match_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(300):
        length = int(rng.integers(5, 400))
        window = int(rng.integers(4, 120))
        edges = np.sort(rng.choice(np.arange(length + 1), size=2 * int(rng.integers(0, 4)), replace=False))
        spans = [(int(a), int(b)) for a, b in edges.reshape(-1, 2) if b > a]
        expected = _brute_force_runs(length, window, spans)
        got = np.full(len(expected), -1)
        for cls, runs in enumerate(class_runs(length, window, spans)):
            for first, count in runs:
                assert (got[first:first + count] == -1).all()
                got[first:first + count] = cls
        assert got.tolist() == expected, (length, window, spans)


def _classify(store, row, start):
    """Class of a window from the stored labels themselves."""
    y = store.labels(row)[start:start + WINDOW]
    return window_class(int(y.sum()), min(WINDOW, store.length(row)))


def test_sampler_mix_matches_weights(built):
    store, _ = built
    sampler = TrainingWindowSampler(store, None, 60.0, 0.5, 0.2, 0.3, seed=1, num_windows=6000)
    draws = list(sampler)
    assert len(draws) == 6000
    counts = np.bincount([_classify(store, r, s) for r, s in draws], minlength=3) / len(draws)
    np.testing.assert_allclose(counts, [0.5, 0.2, 0.3], atol=0.025)
    for row, start in draws:
        assert 0 <= start and (start + WINDOW <= store.length(row) or start == 0)


def test_sampler_drops_classes_without_windows(built):
    store, _ = built
    sampler = TrainingWindowSampler(store, ["rec_c"], 60.0, 0.4, 0.3, 0.3, seed=0, num_windows=200)
    assert sampler.class_probabilities() == {"seizure": 0.0, "partial": 0.0, "background": 1.0,
                                             "hard_background": 0.0}
    assert {_classify(store, r, s) for r, s in sampler} == {BACKGROUND}
    with pytest.raises(SzflowError, match="no training windows"):
        TrainingWindowSampler(store, ["rec_c"], 60.0, 1.0, 0.0, 0.0, seed=0, num_windows=10)


def test_sampler_is_deterministic_and_resumes_bit_exactly(built):
    store, _ = built
    make = lambda seed: TrainingWindowSampler(store, None, 60.0, 0.4, 0.3, 0.3, seed=seed, num_windows=50)
    full = [d for _, d in zip(range(130), _endless(make(7)), strict=False)]
    assert full[:50] == list(make(7))
    assert full[:50] != list(make(8))
    assert full[:50] != full[50:100]  # a new epoch draws new windows

    first = make(7)
    consumed = [d for _, d in zip(range(70), _endless(first), strict=False)]
    state = first.state_dict()
    assert state["position"] == 70
    resumed = make(0)
    resumed.load_state_dict(state)
    assert consumed + [d for _, d in zip(range(60), _endless(resumed), strict=False)] == full
    other = TrainingWindowSampler(store, ["rec_a"], 60.0, 0.4, 0.3, 0.3, seed=7, num_windows=50)
    with pytest.raises(SzflowError, match="fingerprint"):
        other.load_state_dict(state)


def _endless(sampler):
    while True:
        yield from sampler


def test_sampler_classes_are_the_labelled_classes(built):
    store, _ = built
    sampler = TrainingWindowSampler(store, None, 60.0, 1, 1, 1, seed=2, num_windows=300)
    rows, starts = sampler.epoch_draws(0)
    classes = {_classify(store, int(r), int(s)) for r, s in zip(rows, starts, strict=True)}
    assert classes == {SEIZURE, PARTIAL, BACKGROUND}


# Draws of TrainingWindowSampler(built store, None, 60.0, 0.4, 0.3, 0.3, seed=0, num_windows=4), epoch 0,
# computed with the three-class sampler before the hard background class existed.
PINNED_DRAWS = ([2, 0, 2, 0], [135253, 10861, 85918, 16640])


def test_sampler_without_hard_background_draws_as_before(built):
    """The fourth class at weight 0 changes no draw and no fingerprint (old last.pt files resume)."""
    store, _ = built
    plain = TrainingWindowSampler(store, None, 60.0, 0.4, 0.3, 0.3, seed=3, num_windows=400)
    runs = [(store.row_of("rec_c"), 100, 50)]
    off = TrainingWindowSampler(store, None, 60.0, 0.4, 0.3, 0.3, seed=3, num_windows=400,
                                hard_background_weight=0.0, hard_background_runs=runs)
    assert list(plain) == list(off)
    assert plain.fingerprint() == off.fingerprint()
    # Pinned draws of the three-class sampler: a change to the draw arithmetic shows here.
    rows, starts = TrainingWindowSampler(store, None, 60.0, 0.4, 0.3, 0.3, seed=0, num_windows=4).epoch_draws(0)
    assert (rows.tolist(), starts.tolist()) == PINNED_DRAWS


def test_sampler_hard_background_draws_only_given_runs(built):
    store, _ = built
    row_c, row_a = store.row_of("rec_c"), store.row_of("rec_a")
    runs = [(row_c, 1000, 300), (row_a, 100 * FS, 5)]
    sampler = TrainingWindowSampler(store, None, 60.0, 0.0, 0.0, 1.0, seed=4, num_windows=3000,
                                    hard_background_weight=1.0, hard_background_runs=runs)
    assert sampler.class_totals_dict()["hard_background"] == 305
    assert sampler.class_probabilities()["hard_background"] == pytest.approx(0.5)
    hard = [(r, s) for r, s in sampler if (r == row_c and 1000 <= s < 1300) or (r == row_a and
                                                                                 100 * FS <= s < 100 * FS + 5)]
    # rec_c has 138,241 background starts of its own, so windows inside the runs are hard draws.
    assert len(hard) / 3000 == pytest.approx(0.5, abs=0.03)
    assert {_classify(store, r, s) for r, s in hard} == {BACKGROUND}
    again = TrainingWindowSampler(store, None, 60.0, 0.0, 0.0, 1.0, seed=4, num_windows=3000,
                                  hard_background_weight=1.0, hard_background_runs=runs[:1])
    assert again.fingerprint() != sampler.fingerprint()
    with pytest.raises(ValueError, match="not a run of starts"):
        TrainingWindowSampler(store, ["rec_a"], 60.0, 1, 1, 1, hard_background_weight=1.0,
                              hard_background_runs=[(row_c, 0, 10)])
    assert HARD_BACKGROUND == 3


# ----------------------------------------------------------------------------- inference windows
@pytest.mark.parametrize("rate_hz", [4.0, 256.0, 1.0])
def test_stitched_tracks_cover_every_frame_exactly_once(built, rate_hz):
    store, _ = built
    windows = InferenceWindows(store, None, window_s=60.0, overlap_s=10.0)
    spf = int(FS / rate_hz)
    frames = WINDOW // spf
    # Each window outputs the global frame index of each of its frames, and a count of 1.
    outputs = np.stack([np.stack([start // spf + np.arange(frames), np.ones(frames, int)], axis=-1)
                        for _, start in windows.windows])
    tracks = windows.stitch_all(outputs, rate_hz)
    for rid in RECORDINGS:
        n_frames = -(-store.length(rid) // spf)
        track = tracks[rid]
        assert track.shape == (n_frames, 2)
        np.testing.assert_array_equal(track[:, 0], np.arange(n_frames))  # each frame from its own place
        assert (track[:, 1] == 1).all()


def test_inference_windows_layout(built):
    store, _ = built
    windows = InferenceWindows(store, None, 60.0, 10.0)
    starts = {rid: [windows[i][1] for i in windows.window_indices(rid)] for rid in RECORDINGS}
    assert starts["rec_b"] == [0] and starts["rec_d"] == [0]  # short / exactly one window
    assert starts["rec_a"] == [0, 50 * FS, 100 * FS, 150 * FS, 200 * FS, 240 * FS]  # last aligned to the end
    assert starts["rec_e"] == [0, 50 * FS, 72 * FS]  # end (71.3 s) rounded up to whole seconds
    for rid, s in starts.items():
        assert s[-1] + WINDOW >= store.length(rid)  # the end is covered
        assert s[-1] + WINDOW - store.length(rid) < max(FS, WINDOW - store.length(rid) + 1)


def test_centre_window_owns_each_frame(built):
    store, _ = built
    windows = InferenceWindows(store, ["rec_a"], 60.0, 10.0)
    n = len(windows)
    # Window j outputs j everywhere: the track says which window owns each 1 s frame.
    owner = windows.stitch("rec_a", np.repeat(np.arange(n)[:, None], 60, axis=1), 1.0)
    assert owner.tolist() == [0] * 55 + [1] * 50 + [2] * 50 + [3] * 50 + [4] * 45 + [5] * 50


# ----------------------------------------------------------------------------- datasets, loaders
def test_training_dataset_items(built):
    store, _arrays = built
    sampler = TrainingWindowSampler(store, None, 60.0, 0.4, 0.3, 0.3, seed=0, num_windows=8)
    dataset = TrainingWindowDataset(store, 60.0, frame_rate_hz=4.0)
    row, start = next(iter(sampler))
    item = dataset[(row, start)]
    assert item["x"].dtype == torch.float32 and tuple(item["x"].shape) == (19, WINDOW)
    assert tuple(item["y"].shape) == (240,) and tuple(item["valid"].shape) == (240,)
    assert item["present"].dtype == torch.bool and tuple(item["present"].shape) == (19,)
    per_sample = TrainingWindowDataset(store, 60.0)[(row, start)]
    assert tuple(per_sample["y"].shape) == (WINDOW,)
    assert torch.equal(item["y"], per_sample["y"].reshape(240, 64).amax(dim=1))


def test_inference_dataset_marks_padding(built):
    store, _ = built
    windows = InferenceWindows(store, ["rec_b"], 60.0, 10.0)
    item = InferenceWindowDataset(windows, frame_rate_hz=4.0)[0]
    n_valid = -(-store.length("rec_b") // 64)
    assert item["valid"].sum().item() == n_valid and item["index"] == 0
    labels = store.labels("rec_b")
    assert item["y"][: n_valid - 1].tolist() == [float(labels[i * 64: (i + 1) * 64].max()) for i in range(n_valid - 1)]


def test_dataloader_honours_profile(built):
    store, _ = built
    dataset = TrainingWindowDataset(store, 60.0, frame_rate_hz=4.0)
    sampler = TrainingWindowSampler(store, None, 60.0, 0.4, 0.3, 0.3, seed=0, num_windows=4)
    local = hardware("local", num_workers=0, pin_memory=False)
    assert dataloader_kwargs(local) == {"num_workers": 0, "pin_memory": False}
    loader = make_dataloader(dataset, local, batch_size=2, sampler=sampler)
    batch = next(iter(loader))
    assert tuple(batch["x"].shape) == (2, 19, WINDOW) and tuple(batch["y"].shape) == (2, 240)
    a100 = hardware("a100", num_workers=2, pin_memory=True, persistent_workers=True, prefetch_factor=4)
    loader = make_dataloader(dataset, a100, batch_size=64, sampler=sampler)
    assert loader.num_workers == 2 and loader.pin_memory and loader.persistent_workers
    assert loader.prefetch_factor == 4 and loader.batch_size == 64


def test_dataloader_with_worker_processes(built):
    store, _ = built
    windows = InferenceWindows(store, None, 60.0, 10.0)
    workers = hardware("local", num_workers=1, persistent_workers=False, prefetch_factor=2)
    loader = make_dataloader(InferenceWindowDataset(windows, 4.0), workers, batch_size=4)
    indices = torch.cat([batch["index"] for batch in loader]).tolist()
    assert indices == list(range(len(windows)))
