"""Training-time augmentation of EEG windows: mirror the hemispheres, flip the polarity.

Why these two: in the synthetic corpus (and in TUSZ) a patient's focal seizures start at one site,
so with a few dozen training patients the network sees each onset site on one side only and
learns "left temporal rhythm" rather than "lateralised evolving rhythm". Mirroring the montage
left <-> right turns every training patient into a plausible second one. The sign of scalp EEG
depends only on the reference and on the dipole's orientation, so a polarity flip is another
valid recording of the same seizure. Neither changes labels (per-frame, not per-channel), the
per-recording normalisation, or the cost of a step (an index and a multiply on the batch).

Random numbers come from torch's global generator, whose state `last.pt` saves and a resume
restores, so a resumed run still draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

from szflow.data.edf import ELECTRODES

# 10-20 homologous pairs; midline electrodes (FZ, CZ, PZ) map to themselves.
HOMOLOGOUS: dict[str, str] = {
    "FP1": "FP2", "F3": "F4", "C3": "C4", "P3": "P4", "O1": "O2", "F7": "F8", "T3": "T4", "T5": "T6",
}


@lru_cache(maxsize=8)
def mirror_permutation(channels: tuple[str, ...] = ELECTRODES) -> tuple[int, ...]:
    """Index list that swaps every left electrode with its right homologue (midline stays)."""
    swap = {**HOMOLOGOUS, **{right: left for left, right in HOMOLOGOUS.items()}}
    position = {name: i for i, name in enumerate(channels)}
    missing = sorted(swap.get(name, name) for name in channels if swap.get(name, name) not in position)
    if missing:
        raise ValueError(f"cannot mirror the montage: no homologue for {missing} in {list(channels)}")
    return tuple(position[swap.get(name, name)] for name in channels)


def augment_batch(x: Tensor, mirror_probability: float, polarity_flip_probability: float,
                  mirror_index: Sequence[int] | None = None) -> Tensor:
    """Mirror and/or negate each window of `x` (B, channels, T) independently; returns a new tensor.

    Two uniform draws per window are always taken (even with probability 0), so the random stream
    does not depend on the settings' values. Padded samples are zero and stay zero.
    """
    if x.ndim != 3:
        raise ValueError(f"expected a (batch, channels, samples) tensor, got shape {tuple(x.shape)}")
    draws = torch.rand(x.shape[0], 2)
    mirror = (draws[:, 0] < mirror_probability).to(x.device)
    flip = (draws[:, 1] < polarity_flip_probability).to(x.device)
    if not bool(mirror.any()) and not bool(flip.any()):
        return x
    index = torch.as_tensor(mirror_permutation() if mirror_index is None else list(mirror_index),
                            device=x.device)
    if index.numel() != x.shape[1]:
        raise ValueError(f"mirror index has {index.numel()} channels, the batch {x.shape[1]}")
    out = torch.where(mirror[:, None, None], x.index_select(1, index), x)
    sign = torch.where(flip, -1.0, 1.0).to(x.dtype)
    return out * sign[:, None, None]
