"""Exponential moving average (EMA) of the weights: what validation scores and best.pt holds.

A short run (a few hundred steps of 8 windows) ends with weights that depend on the last few
batches and dropout masks; the average over the last ~1 / (1 - decay) steps is a steadier model.
The decay is warmed up, min(decay, (1 + n) / (10 + n)) after n updates, so that the average does not
keep the random initialisation for the first ~1 / (1 - decay) steps: early validations score the
recent weights, not the initial ones.

Built on `torch.optim.swa_utils.AveragedModel`; its state (averaged weights and update count)
travels in last.pt so that a resumed run continues the same average.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

WARMUP_OFFSET = 10.0


def warmed_decay(decay: float, updates: int) -> float:
    """The decay used for update number `updates` (0-based): the configured one once warmed up."""
    return min(decay, (1.0 + updates) / (WARMUP_OFFSET + updates))


class WeightAverage:
    """EMA copy of `model` (all parameters and buffers), updated after each optimizer step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay

        def average(averaged: Tensor, current: Tensor, updates: Tensor) -> Tensor:
            # AveragedModel copies the weights on its first update and calls this from the second on,
            # with `updates` = updates so far (>= 1).
            d = warmed_decay(self.decay, int(updates))
            return averaged + (current - averaged) * (1.0 - d)

        self.averaged = AveragedModel(model, avg_fn=average, use_buffers=True)

    @property
    def module(self) -> nn.Module:
        """The averaged model (the Detector inside), for validation and best.pt."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "averaged": self.averaged.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if float(state["decay"]) != self.decay:
            raise ValueError(f"EMA state has decay {state['decay']}, this run uses {self.decay}")
        self.averaged.load_state_dict(state["averaged"])
