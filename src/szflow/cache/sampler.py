"""Which windows to read: balanced random training windows, and overlapping inference windows.

Training (`TrainingWindowSampler`): every sample offset at which a full window fits is a candidate
start. A window is *seizure* when more than half of its samples are seizure, *partial* when some
but at most half are, *background* when none are. Each draw first picks a class with the given
weights (classes without any window are dropped and the weights renormalised), then a start
uniformly among all windows of that class in the chosen recordings. The classes are computed
exactly, to the sample, from the seizure intervals (no label scan): the seizure count of a window
is piecewise linear in its start, so each class is a union of runs of consecutive starts.
An optional fourth class, *hard background*, is given as runs of background starts chosen outside
the sampler (`szflow.train.hard_negatives`: windows around the frames the classical baseline scores
highest, which is where seizure-like artifacts are); its windows are drawn uniformly too.

Inference (`InferenceWindows`): windows of `window_s` every `window_s - overlap_s`, the last one
aligned to the recording's end (rounded up to a whole second so frames line up, and padded past
the end by less than a second); a recording shorter than one window gets one padded window.
`stitch` keeps for every frame the output of the window whose centre is closest, so each frame
comes from exactly one window and never from a window's edge when an overlapping window has it
more centrally.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Sequence

import numpy as np

from szflow.errors import SzflowError
from szflow.signal.labels import interval_samples

SEIZURE, PARTIAL, BACKGROUND, HARD_BACKGROUND = 0, 1, 2, 3
CLASS_NAMES = ("seizure", "partial", "background", "hard_background")


def window_class(seizure_samples: int, valid_samples: int) -> int:
    """SEIZURE if more than half the (valid) samples are seizure, PARTIAL if some, else BACKGROUND."""
    if seizure_samples <= 0:
        return BACKGROUND
    return SEIZURE if 2 * seizure_samples > valid_samples else PARTIAL


def _seizure_count(start: int, window: int, spans: Sequence[tuple[int, int]]) -> int:
    """Seizure samples in [start, start + window)."""
    stop = start + window
    return sum(max(0, min(b, stop) - max(a, start)) for a, b in spans)


def _first_true(lo: int, hi: int, predicate) -> int:
    """Smallest s in [lo, hi) with predicate(s) for a predicate that is False then True; hi if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def class_runs(length: int, window: int, spans: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """For one recording: per class, runs (first_start, count) of window starts of that class.

    `spans` are the seizure [first, stop) sample ranges. Starts go from 0 to length - window; a
    recording shorter than a window has the single start 0, classed over its own length.
    """
    runs: list[list[tuple[int, int]]] = [[], [], []]
    if length <= 0:
        return runs
    if length <= window:
        runs[window_class(_seizure_count(0, length, spans), length)].append((0, 1))
        return runs
    last = length - window
    # The count is linear in the start between these points (a window edge meets a seizure edge).
    points = {0, last + 1}
    for a, b in spans:
        points.update(p for p in (a - window, a, b - window, b) if 0 < p <= last)
    edges = sorted(points)

    def add(cls: int, first: int, stop: int) -> None:
        if stop <= first:
            return
        if runs[cls] and runs[cls][-1][0] + runs[cls][-1][1] == first:
            prev_first, prev_count = runs[cls][-1]
            runs[cls][-1] = (prev_first, prev_count + stop - first)
        else:
            runs[cls].append((first, stop - first))

    for p, q in itertools.pairwise(edges):
        def count(s: int) -> int:
            return _seizure_count(s, window, spans)

        if count(p) <= count(q - 1):  # non-decreasing on [p, q)
            some = _first_true(p, q, lambda s: count(s) > 0)
            most = _first_true(p, q, lambda s: 2 * count(s) > window)
            add(BACKGROUND, p, some)
            add(PARTIAL, some, most)
            add(SEIZURE, most, q)
        else:  # decreasing
            not_most = _first_true(p, q, lambda s: 2 * count(s) <= window)
            none = _first_true(p, q, lambda s: count(s) == 0)
            add(SEIZURE, p, not_most)
            add(PARTIAL, not_most, none)
            add(BACKGROUND, none, q)
    return runs


def _recording_spans(store, row: int) -> list[tuple[int, int]]:
    return interval_samples(store.seizure_intervals(row), store.length(row), store.sample_rate_hz)


def _rows(store, recording_ids: Sequence[str] | None) -> list[int]:
    if recording_ids is None:
        return list(range(len(store)))
    return [store.row_of(rid) for rid in recording_ids]


class TrainingWindowSampler:
    """Random training windows balanced over seizure / partial / background; yields (row, start).

    Deterministic for a seed. Draw i of epoch e depends only on (seed, e, the recordings, the
    window, the weights, num_windows), so `state_dict()` / `load_state_dict()` (seed and position)
    resume bit-exactly. An epoch is `num_windows` draws; iterating again continues where the last
    iteration stopped (a new epoch starts after num_windows draws).

    A DataLoader reads ahead of the training loop, so `position` can be ahead of what the loop
    has consumed: pass the number of windows the loop actually consumed to `state_dict(position=)`.
    Use as `DataLoader(TrainingWindowDataset(store), sampler=this, batch_size=...)`.
    """

    def __init__(self, store, recording_ids: Sequence[str] | None = None, window_s: float = 60.0,
                 seizure_weight: float = 0.4, partial_weight: float = 0.3, background_weight: float = 0.3,
                 seed: int = 0, num_windows: int = 1000, hard_background_weight: float = 0.0,
                 hard_background_runs: Sequence[tuple[int, int, int]] = ()):
        """`hard_background_runs`: (row, first_start, count) runs of window starts, each a background
        window of a row in `recording_ids`; drawn with `hard_background_weight`."""
        if num_windows < 1:
            raise ValueError("num_windows must be >= 1")
        weights = np.array([seizure_weight, partial_weight, background_weight, hard_background_weight],
                           dtype=np.float64)
        if (weights < 0).any():
            raise ValueError(f"sampler weights must be >= 0, got {weights.tolist()}")
        self.store = store
        self.rows = _rows(store, recording_ids)
        self.window = round(window_s * store.sample_rate_hz)
        self.seed = int(seed)
        self.num_windows = int(num_windows)
        self.weights = weights
        self.position = 0

        run_rows: list[list[int]] = [[], [], [], []]
        run_firsts: list[list[int]] = [[], [], [], []]
        run_counts: list[list[int]] = [[], [], [], []]
        for row in self.rows:
            for cls, runs in enumerate(class_runs(store.length(row), self.window, _recording_spans(store, row))):
                for first, count in runs:
                    run_rows[cls].append(row)
                    run_firsts[cls].append(first)
                    run_counts[cls].append(count)
        rows_set = set(self.rows)
        for row, first, count in hard_background_runs:
            if int(row) not in rows_set or int(count) < 1 or int(first) < 0:
                raise ValueError(f"hard background run {(row, first, count)} is not a run of starts of a "
                                 "sampled recording")
            run_rows[HARD_BACKGROUND].append(int(row))
            run_firsts[HARD_BACKGROUND].append(int(first))
            run_counts[HARD_BACKGROUND].append(int(count))
        hard = np.array([run_rows[HARD_BACKGROUND], run_firsts[HARD_BACKGROUND], run_counts[HARD_BACKGROUND]],
                        dtype=np.int64)
        self._hard_runs_digest = hashlib.sha256(hard.tobytes()).hexdigest()[:16]
        self._run_rows = [np.asarray(r, np.int64) for r in run_rows]
        self._run_firsts = [np.asarray(f, np.int64) for f in run_firsts]
        counts = [np.asarray(c, np.int64) for c in run_counts]
        # _run_cum[cls][k] = windows of that class in runs before k
        self._run_cum = [np.concatenate(([0], np.cumsum(c)))[:-1] for c in counts]
        self.class_totals = np.array([int(c.sum()) for c in counts], dtype=np.int64)

        usable = np.where(self.class_totals > 0, weights, 0.0)
        if usable.sum() <= 0:
            raise SzflowError(
                f"no training windows to draw: windows per class {self.class_totals_dict()} with weights "
                f"{dict(zip(CLASS_NAMES, weights.tolist(), strict=True))} over {len(self.rows)} recordings")
        self.probabilities = usable / usable.sum()
        self._epoch_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ description
    def class_totals_dict(self) -> dict[str, int]:
        return {name: int(n) for name, n in zip(CLASS_NAMES, self.class_totals, strict=True)}

    def class_probabilities(self) -> dict[str, float]:
        return {name: float(p) for name, p in zip(CLASS_NAMES, self.probabilities, strict=True)}

    def fingerprint(self) -> str:
        """What the draws depend on besides seed and position."""
        payload = {
            "recordings": [self.store.index["recording_id"].iat[r] for r in self.rows],
            "lengths": [self.store.length(r) for r in self.rows],
            "window": self.window, "weights": self.weights.tolist(), "num_windows": self.num_windows,
        }
        if self.weights[HARD_BACKGROUND] > 0:
            payload["hard_background_runs"] = self._hard_runs_digest
        else:  # without hard background, the fingerprint (and every draw) is what it was before
            payload["weights"] = self.weights[:HARD_BACKGROUND].tolist()
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ draws
    def epoch_draws(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, starts) of all `num_windows` draws of `epoch`."""
        if self._epoch_cache is not None and self._epoch_cache[0] == epoch:
            return self._epoch_cache[1], self._epoch_cache[2]
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(epoch,))))
        # With hard_background_weight 0 the extra class has probability 0 and these are the draws of
        # the three-class sampler, bit for bit (choice inverts the CDF, which the extra 0 leaves as is).
        classes = rng.choice(len(CLASS_NAMES), size=self.num_windows, p=self.probabilities)
        # Only drawn classes occur, and those have windows: the upper bounds are all positive.
        nth = rng.integers(0, np.maximum(self.class_totals[classes], 1))
        rows = np.empty(self.num_windows, np.int64)
        starts = np.empty(self.num_windows, np.int64)
        for cls in range(len(CLASS_NAMES)):
            chosen = classes == cls
            if not chosen.any():
                continue
            run = np.searchsorted(self._run_cum[cls], nth[chosen], side="right") - 1
            rows[chosen] = self._run_rows[cls][run]
            starts[chosen] = self._run_firsts[cls][run] + nth[chosen] - self._run_cum[cls][run]
        self._epoch_cache = (epoch, rows, starts)
        return rows, starts

    def __len__(self) -> int:
        return self.num_windows

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, first = divmod(self.position, self.num_windows)
        rows, starts = self.epoch_draws(epoch)
        for i in range(first, self.num_windows):
            self.position = epoch * self.num_windows + i + 1
            yield int(rows[i]), int(starts[i])

    # ------------------------------------------------------------------ resume
    def state_dict(self, position: int | None = None) -> dict:
        """Seed and position (windows drawn so far, or `position` if given) plus a fingerprint."""
        return {"seed": self.seed, "position": int(self.position if position is None else position),
                "num_windows": self.num_windows, "fingerprint": self.fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state` was taken; SzflowError if it belongs to other settings."""
        if state.get("fingerprint") != self.fingerprint():
            raise SzflowError("sampler state was saved for other recordings, window or weights "
                              f"(fingerprint {state.get('fingerprint')} != {self.fingerprint()}); "
                              "cannot resume it bit-exactly")
        self.seed = int(state["seed"])
        self.position = int(state["position"])
        self._epoch_cache = None


class InferenceWindows:
    """Overlapping windows covering every sample of every recording; item i is (row, start)."""

    def __init__(self, store, recording_ids: Sequence[str] | None = None, window_s: float = 60.0,
                 overlap_s: float = 10.0):
        rate = store.sample_rate_hz
        self.store = store
        self.window = round(window_s * rate)
        overlap = round(overlap_s * rate)
        self.hop = self.window - overlap
        if self.hop <= 0 or overlap < 0:
            raise ValueError(f"overlap_s ({overlap_s}) must be >= 0 and smaller than window_s ({window_s})")
        # End-aligned windows start on this grid (1 s when the hop is whole seconds), so that the
        # frames of every window sit on the same frame grid for any frame rate dividing 1 Hz.
        self.grid = math.gcd(self.hop, round(rate))
        self.rows = _rows(store, recording_ids)
        self.windows: list[tuple[int, int]] = []
        self._span: dict[int, tuple[int, int]] = {}
        for row in self.rows:
            starts = self.window_starts(store.length(row))
            self._span[row] = (len(self.windows), len(starts))
            self.windows.extend((row, s) for s in starts)

    def window_starts(self, length: int) -> list[int]:
        """Starts every hop while a window ends before the recording does, then one at the end."""
        if length <= self.window:
            return [0]
        starts = list(range(0, length - self.window, self.hop))
        last = -(-(length - self.window) // self.grid) * self.grid
        if last > starts[-1]:
            starts.append(last)
        return starts

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self.windows[index]

    def window_indices(self, row_or_recording_id: int | str) -> range:
        """Indices (into this object) of the windows of one recording, in time order."""
        first, count = self._span[self.store.row_of(row_or_recording_id)]
        return range(first, first + count)

    def stitch(self, row_or_recording_id: int | str, per_window_outputs, rate_hz: float) -> np.ndarray:
        """One track for a recording from its windows' outputs (n_windows, frames_per_window, ...).

        `rate_hz` is the outputs' frame rate (the sample rate for per-sample outputs). The track
        has ceil(length / samples_per_frame) frames; frame k comes from the window whose centre is
        nearest (the boundary between consecutive windows is the middle of their overlap).
        """
        row = self.store.row_of(row_or_recording_id)
        spf = self.store.sample_rate_hz / float(rate_hz)
        if abs(spf - round(spf)) > 1e-9 or round(spf) < 1:
            raise ValueError(f"frame rate {rate_hz} Hz does not divide the sample rate {self.store.sample_rate_hz} Hz")
        spf = round(spf)
        if self.window % spf:
            raise ValueError(f"a {self.window}-sample window is not a whole number of {spf}-sample frames")
        frames_per_window = self.window // spf
        starts = [self.windows[i][1] for i in self.window_indices(row)]
        outputs = np.asarray(per_window_outputs)
        if outputs.shape[:2] != (len(starts), frames_per_window):
            raise ValueError(f"expected outputs of shape ({len(starts)}, {frames_per_window}, ...) for "
                             f"recording row {row}, got {outputs.shape}")
        if any(s % spf for s in starts):
            raise ValueError(f"window starts {starts} are not on the {spf}-sample frame grid")
        frame_starts = [s // spf for s in starts]
        n_frames = -(-self.store.length(row) // spf)
        track = np.empty((n_frames, *outputs.shape[2:]), dtype=outputs.dtype)
        low = 0
        for j, first in enumerate(frame_starts):
            if j + 1 < len(frame_starts):
                high = (frame_starts[j + 1] + first + frames_per_window) // 2
            else:
                high = n_frames
            high = min(high, n_frames)
            track[low:high] = outputs[j, low - first: high - first]
            low = high
        return track

    def stitch_all(self, outputs, rate_hz: float) -> dict[str, np.ndarray]:
        """Tracks of every recording from outputs of all windows in this object's order."""
        outputs = np.asarray(outputs)
        if len(outputs) != len(self):
            raise ValueError(f"expected {len(self)} window outputs, got {len(outputs)}")
        ids = self.store.index["recording_id"]
        return {ids.iat[row]: self.stitch(row, outputs[list(self.window_indices(row))], rate_hz)
                for row in self.rows}
