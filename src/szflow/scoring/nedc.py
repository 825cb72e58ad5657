"""NEDC EEG Eval v6 scoring of the seizure label: OVLP (any-overlap) and TAES (time-aligned).

Semantics follow DESIGN.md §8 and are pinned by the NEDC scorer's own results in
`shared/scoring_vectors/` (tests/test_scoring_vectors.py). One finding from those vectors: in TAES
two events that only touch, or that end and start within the same second (vectors 08 and 09), do
NOT overlap: the scorer's results there (tp 0, fn 1, fp 1) are only reproduced with the same strict
overlap test as OVLP, `a.stop > b.start and a.start < b.stop`. A whole-second test would give a
partial false alarm of 0.3 instead of 1 in vector 08.

Each scorer returns {"targets", "tp", "fp", "fn", "sensitivity" (0-1), "fa_per_24h"} for the corpus.
With no reference seizures the sensitivity is 0.0, as the NEDC scorer prints it.
"""

from __future__ import annotations

import math

import numpy as np

from szflow.scoring.events import (
    Interval,
    PreparedRecording,
    ensure_prepared,
    fa_per_24h,
    flatten,
    total_duration,
)

# ---------------------------------------------------------------------------------------------
# OVLP


def _keys(rec: np.ndarray, time: np.ndarray) -> np.ndarray:
    """(recording, time) pairs as complex numbers: numpy orders complex values lexicographically
    (real part, then imaginary), which lets one `searchsorted` compare within each recording exactly,
    with no float offsets that could move a boundary."""
    keys = np.empty(rec.size, dtype=np.complex128)
    keys.real = rec
    keys.imag = time
    return keys


def _union(rec: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge intervals that strictly overlap (per recording); sorted input, sorted disjoint output.

    "Does X overlap any of these intervals" has the same answer for the union, and a disjoint list
    has sorted stops, which the counting in `_overlap_any` needs. Touching intervals stay apart.
    """
    if start.size < 2:
        return rec, start, stop
    same = rec[1:] == rec[:-1]
    monotone = np.all(~same | (start[1:] >= stop[:-1]))
    if monotone:
        return rec, start, stop
    out_r: list[int] = []
    out_a: list[float] = []
    out_b: list[float] = []
    for r, a, b in zip(rec.tolist(), start.tolist(), stop.tolist()):
        if out_r and out_r[-1] == r and a < out_b[-1]:
            out_b[-1] = max(out_b[-1], b)
        else:
            out_r.append(r)
            out_a.append(a)
            out_b.append(b)
    return np.asarray(out_r, np.int64), np.asarray(out_a, np.float64), np.asarray(out_b, np.float64)


def _overlap_any(q_rec, q_start, q_stop, rec, start, stop) -> np.ndarray:
    """For each query interval: does it strictly overlap any interval of its recording?

    `rec/start/stop` must be sorted and disjoint within each recording (see `_union`). Among them,
    those with start < q.stop form a prefix and those with stop <= q.start a shorter prefix; the
    query overlaps something exactly when the first prefix is longer.
    """
    if q_rec.size == 0:
        return np.zeros(0, dtype=bool)
    if rec.size == 0:
        return np.zeros(q_rec.size, dtype=bool)
    begins_before_end = np.searchsorted(_keys(rec, start), _keys(q_rec, q_stop), side="left")
    ends_before_start = np.searchsorted(_keys(rec, stop), _keys(q_rec, q_start), side="right")
    return begins_before_end > ends_before_start


def ovlp_masks(ref: tuple[np.ndarray, np.ndarray, np.ndarray],
               hyp: tuple[np.ndarray, np.ndarray, np.ndarray],
               ref_union: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               hyp_disjoint: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hit per reference event, false alarm per hypothesis event) of corpus-wide interval arrays
    (recording, start, stop), each sorted by (recording, start). Vectorised: one call scores a
    whole corpus or a sweep row. A sweep passes the references' union once, and says its
    hypotheses are already disjoint."""
    hits_mask = _overlap_any(*ref, *(hyp if hyp_disjoint else _union(*hyp)))
    fa_mask = ~_overlap_any(*hyp, *(ref_union if ref_union is not None else _union(*ref)))
    return hits_mask, fa_mask


def ovlp_arrays(ref: tuple[np.ndarray, np.ndarray, np.ndarray],
                hyp: tuple[np.ndarray, np.ndarray, np.ndarray],
                ref_union: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                hyp_disjoint: bool = False) -> tuple[int, int, int]:
    """(hits, misses, false alarms) of `ovlp_masks`."""
    hits_mask, fa_mask = ovlp_masks(ref, hyp, ref_union, hyp_disjoint)
    hits = int(hits_mask.sum())
    return hits, int(ref[0].size) - hits, int(fa_mask.sum())


def ovlp_counts(reference: list[Interval], hypothesis: list[Interval]) -> tuple[int, int, int]:
    """(hits, misses, false alarms) of one recording, by the definition itself (used in tests)."""
    hits = sum(any(h[1] > r[0] and h[0] < r[1] for h in hypothesis) for r in reference)
    fas = sum(not any(h[1] > r[0] and h[0] < r[1] for r in reference) for h in hypothesis)
    return hits, len(reference) - hits, fas


def _result(targets: float, tp, fn, fp, duration_s: float) -> dict:
    return {
        "targets": targets,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "sensitivity": float(tp) / float(targets) if targets else 0.0,
        "fa_per_24h": fa_per_24h(fp, duration_s),
    }


def score_ovlp(recordings) -> dict:
    """NEDC OVLP over a corpus: a reference seizure is a hit if any hypothesis overlaps it; a
    hypothesis overlapping no reference is one false alarm; FA/24h over the summed durations."""
    recs = ensure_prepared(recordings)
    tp, fn, fp = ovlp_arrays(flatten(recs, "reference"), flatten(recs, "hypothesis"))
    return _result(tp + fn, tp, fn, fp, total_duration(recs))


# ---------------------------------------------------------------------------------------------
# TAES


def _overlaps(a: Interval, b: Interval) -> bool:
    return a[1] > b[0] and a[0] < b[1]


def _partial(ref: Interval, hyp: Interval) -> tuple[float, float]:
    """(hit, false alarm) fractions of one overlapping pair, relative to the reference's duration."""
    r0, r1 = ref
    h0, h1 = hyp
    length = r1 - r0
    if length <= 0:
        # A zero-length seizure that a hypothesis straddles: fully hit; any time around it is false.
        return 1.0, 1.0 if h1 > h0 else 0.0
    if h0 <= r0 and h1 <= r1:  # starts before (or with) the seizure, ends inside it
        return (h1 - r0) / length, min(1.0, (r0 - h0) / length)
    if h0 >= r0 and h1 >= r1:  # starts inside, ends after (or with) it
        return (r1 - h0) / length, min(1.0, (h1 - r1) / length)
    if h0 < r0 and h1 > r1:  # covers it
        return 1.0, min(1.0, ((r0 - h0) + (h1 - r1)) / length)
    return (h1 - h0) / length, 0.0  # inside it


def taes_counts(reference: list[Interval], hypothesis: list[Interval]) -> tuple[float, float, float]:
    """(hit, miss, false alarm) of one recording; intervals sorted by start.

    References are taken in time order, each with the hypotheses not yet used. A hypothesis that
    reaches the end of its reference is scored against it alone, and every later reference it also
    overlaps is a full miss. A reference that outlasts the hypothesis collects the partial hits and
    false alarms of every later hypothesis overlapping it. Unused references are misses, unused
    hypotheses false alarms. The used-flags are checked everywhere, so overlapping intervals
    (impossible in a timeline file) are never counted twice.
    """
    if not reference:
        return 0.0, 0.0, float(len(hypothesis))
    if not hypothesis:
        return 0.0, float(len(reference)), 0.0
    ref_used = [False] * len(reference)
    hyp_used = [False] * len(hypothesis)
    hit = miss = fa = 0.0
    for i, ref in enumerate(reference):
        if ref_used[i]:
            continue
        for j, hyp in enumerate(hypothesis):
            if hyp_used[j] or not _overlaps(ref, hyp):
                continue
            part_hit, part_fa = _partial(ref, hyp)
            ref_used[i] = hyp_used[j] = True
            if hyp[1] >= ref[1]:
                hit += part_hit
                miss += 1.0 - part_hit
                fa += part_fa
                for k in range(i + 1, len(reference)):
                    if not ref_used[k] and _overlaps(reference[k], hyp):
                        miss += 1.0
                        ref_used[k] = True
            else:
                ref_hit, ref_fa = part_hit, part_fa
                for m in range(j + 1, len(hypothesis)):
                    if not hyp_used[m] and _overlaps(ref, hypothesis[m]):
                        more_hit, more_fa = _partial(ref, hypothesis[m])
                        ref_hit += more_hit
                        ref_fa += more_fa
                        hyp_used[m] = True
                hit += ref_hit
                miss += 1.0 - ref_hit
                fa += ref_fa
            # This reference is scored. (Hypotheses from a timeline file never overlap each other,
            # so for them this changes nothing; overlapping ones are not scored twice against it.)
            break
    miss += sum(1.0 for used in ref_used if not used)
    fa += sum(1.0 for used in hyp_used if not used)
    return hit, miss, fa


def score_taes(recordings) -> dict:
    """NEDC TAES over a corpus: fractional hits, misses and false alarms summed over recordings;
    sensitivity = hits / number of reference seizures; FA/24h over the summed durations."""
    recs: list[PreparedRecording] = ensure_prepared(recordings)
    hits: list[float] = []
    misses: list[float] = []
    fas: list[float] = []
    targets = 0
    for rec in recs:
        h, m, f = taes_counts(rec.reference, rec.hypothesis)
        hits.append(h)
        misses.append(m)
        fas.append(f)
        targets += len(rec.reference)
    # fsum: a corpus of thousands of fractions should not depend on the order of the recordings.
    tp, fn, fp = math.fsum(hits), math.fsum(misses), math.fsum(fas)
    return _result(targets, tp, fn, fp, total_duration(recs))
