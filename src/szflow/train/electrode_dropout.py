"""Electrode dropout: training windows that lose random electrodes, as real recordings do.

A fraction `probability` of the training windows loses k electrodes, k uniform in 1..`max_dropped`
(at most all but one of the electrodes the recording has): their rows are zeroed and marked
absent in the presence mask the detector reads, so it learns to cope with missing electrodes
instead of meeting them for the first time on a real recording.

Which electrodes window number i of a run loses (i counts every window the run draws, over all
steps, micro-batches and ranks) depends only on (seed, i), never on a global RNG: a resumed run
and every DDP rank drop exactly what one uninterrupted process drops.

Re-referencing. The cache holds each recording common-average referenced over its present
electrodes (c_i = r_i - mean_all r). A recording truly missing electrode k would have been
referenced over the others. Re-referencing the remaining rows to their own mean gives exactly that
in raw units, for any set S of remaining electrodes: c_i - mean_S c = r_i - mean_S r (the average
reference is a projection). The cache rows are, however, normalised per channel (robust scale)
and clipped, and the mean of normalised rows is not the normalised mean: the remainder differs
from a truly absent electrode's recording by the spread of the channels' scales (small; channels
of one recording have scales of the same order), and the remaining rows are not re-normalised.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Separates these draws from every other stream seeded by train.seed (the sampler's epochs).
DROPOUT_STREAM = 0xE1EC


def dropped_electrodes(seed: int, draw_index: int, present: np.ndarray, probability: float,
                       max_dropped: int) -> np.ndarray:
    """(C,) bool: the electrodes window `draw_index` of a run with `seed` loses (never all present ones)."""
    present = np.asarray(present, dtype=bool)
    dropped = np.zeros(present.shape, dtype=bool)
    if probability <= 0 or max_dropped < 1:
        return dropped
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(DROPOUT_STREAM,
                                                                                           int(draw_index)))))
    # All three draws always happen, so each window's numbers do not depend on the others' outcome.
    drop = rng.random() < probability
    count = int(rng.integers(1, max_dropped + 1))
    order = rng.permutation(len(present))
    if not drop:
        return dropped
    candidates = order[present[order]]  # the present electrodes, in random order
    dropped[candidates[: min(count, len(candidates) - 1)]] = True
    return dropped


def batch_dropped(seed: int, first_index: int, present: Tensor, probability: float, max_dropped: int) -> Tensor:
    """(B, C) bool for a batch whose windows are draws first_index, first_index + 1, ... of the run."""
    flags = present.detach().cpu().numpy().astype(bool)
    return torch.from_numpy(np.stack([
        dropped_electrodes(seed, first_index + i, flags[i], probability, max_dropped) for i in range(len(flags))
    ]))


def drop_electrodes(x: Tensor, present: Tensor, dropped: Tensor) -> tuple[Tensor, Tensor]:
    """(x, present) with the `dropped` electrodes (B, C) zeroed and absent, and the remaining rows of
    every window that lost one re-referenced to their own average. Windows that lose none are
    returned as they are."""
    present = present.to(device=x.device, dtype=torch.bool)
    if not bool(dropped.any()):  # checked before the copy: `dropped` is drawn on the CPU
        return x, present
    dropped = dropped.to(device=x.device, dtype=torch.bool)
    changed = dropped.any(dim=1)
    keep = present & ~dropped
    weight = keep[changed].to(x.dtype)[:, :, None]  # (b, C, 1)
    block = x[changed]
    mean = (block * weight).sum(dim=1, keepdim=True) / weight.sum(dim=1, keepdim=True)
    x = x.clone()
    x[changed] = (block - mean) * weight
    return x, keep
