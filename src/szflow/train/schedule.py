"""Learning-rate schedule: linear warmup, then cosine decay to `min_lr_ratio` of the peak at `max_steps`."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler


def warmup_cosine_factor(step: int, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr for optimizer step `step` (0-based: the first update uses step 0).

    Warmup starts at 1/warmup (never 0, so the first update is not wasted) and reaches 1 at the end
    of warmup; cosine then decays to `min_lr_ratio` at `max_steps` and stays there.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr_ratio + (1.0 - min_lr_ratio) * cosine


class WarmupCosine(LRScheduler):
    """`LRScheduler` whose state_dict holds only numbers (safe for `torch.load(weights_only=True)`)."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int,
                 min_lr_ratio: float = 0.0, last_epoch: int = -1):
        self.warmup_steps = int(warmup_steps)
        self.max_steps = int(max_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = warmup_cosine_factor(self.last_epoch, self.warmup_steps, self.max_steps, self.min_lr_ratio)
        return [base * factor for base in self.base_lrs]
