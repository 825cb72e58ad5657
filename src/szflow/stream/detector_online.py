"""Incremental inference: every hop, the newest frames scored with the left context of training.

Every `hop` (whole frames) the frames [emitted, S) become final, S the hop's end: they are scored
in the window of `sampler.window_s` that ends `lookahead` after S (the network is bidirectional:
the lookahead is the future it sees; the zero-phase filter's backward pass starts there too). The
window's other frames are discarded, so each frame is scored once, with at least
window_s - lookahead - hop of left context, and never changes after it is emitted. A hop's window
depends only on the samples up to its end, not on how they arrived (late, in bursts): the same
stream gives the same probabilities. At the end of a stream the last window ends at the last
sample and the remaining frames are emitted from it, as the offline path scores a recording's end.
The network gets the montage's presence mask (`Detector.forward`'s `present`) as offline inference
passes it: an electrode the stream lacks is absent, never a flat signal.

Cost: each window of W frames yields hop frames, so the network runs W / hop times the offline
compute (15x for 60 s windows and 4 s hops), plus the backward filter pass over one window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from szflow.config import Params
from szflow.data.electrodes import ElectrodeMontage
from szflow.inference import autocast
from szflow.stream.preprocess_online import OnlinePreprocessor


@dataclass(frozen=True)
class FrameBlock:
    """Final probabilities of frames [first_frame, first_frame + len(probabilities))."""

    first_frame: int
    probabilities: np.ndarray


def presence_mask(montage: ElectrodeMontage, device: torch.device) -> torch.Tensor | None:
    """The model's (1, 19) bool presence mask of `montage`; None when every electrode is present
    (the unmasked path, as `szflow.inference.predict_tracks` passes it)."""
    if bool(montage.present.all()):
        return None
    return torch.from_numpy(np.asarray(montage.present, dtype=bool))[None].to(device)


def score_window(model: torch.nn.Module, window: np.ndarray, device: torch.device, precision: str,
                 present: torch.Tensor | None = None) -> np.ndarray:
    """Per-frame seizure probabilities of one (19, n) float16 network input, `present` the (1, 19)
    presence mask (None: all present): the one model call of the stream."""
    x = torch.from_numpy(window.astype(np.float32))[None].to(device)
    with torch.inference_mode(), autocast(device, precision):
        logits = model(x, None, present)
    return torch.sigmoid(logits.float())[0].cpu().numpy()


class OnlineDetector:
    """Raw signal blocks (the signals `montage` reads) in, final probability frames out (see the
    module docstring)."""

    def __init__(self, model: torch.nn.Module, params: Params, input_rate_hz: float, montage: ElectrodeMontage, *,
                 hop_s: float, lookahead_s: float, stats_window_s: float, device: torch.device, precision: str):
        self.model, self.device, self.precision = model, device, precision
        self.present = presence_mask(montage, device)
        rate = float(params.preprocess.sample_rate_hz)
        self.frame_rate_hz = float(params.model.frame_rate_hz)
        self.spf = round(rate / self.frame_rate_hz)
        self.window = round(params.sampler.window_s * self.frame_rate_hz) * self.spf
        self.hop = max(1, round(hop_s * self.frame_rate_hz)) * self.spf
        self.lookahead = round(lookahead_s * self.frame_rate_hz) * self.spf
        if self.lookahead + self.hop > self.window // 2:
            raise ValueError(f"lookahead {lookahead_s:g} s + hop {hop_s:g} s leave the frames less left "
                             f"context than right context in a {params.sampler.window_s:g} s window")
        self.pre = OnlinePreprocessor(params.preprocess, input_rate_hz, montage, window_samples=self.window,
                                      lookahead_samples=self.lookahead, stats_window_s=stats_window_s)
        self.emitted = 0  # frames emitted so far
        self.next_stop = self.hop  # sample at which the next hop's frames end

    @property
    def lookahead_s(self) -> float:
        return self.lookahead / (self.spf * self.frame_rate_hz)

    def _score(self, end: int, stop_frame: int) -> FrameBlock | None:
        first = max(0, end - self.window)
        probabilities = score_window(self.model, self.pre.window(first, end), self.device, self.precision,
                                     self.present)
        first_frame = first // self.spf
        block = probabilities[self.emitted - first_frame: stop_frame - first_frame]
        if block.size == 0:
            return None
        result = FrameBlock(self.emitted, np.array(block, np.float32))
        self.emitted = stop_frame
        return result

    def push(self, block: np.ndarray) -> list[FrameBlock]:
        """Feed raw samples (len(montage.sources), n) in microvolts; the frames that became final."""
        self.pre.push(block)
        out = []
        while self.next_stop + self.lookahead <= self.pre.n_available:
            scored = self._score(self.next_stop + self.lookahead, self.next_stop // self.spf)
            if scored is not None:
                out.append(scored)
            self.next_stop += self.hop
        return out

    def finish(self) -> list[FrameBlock]:
        """The stream ended: the remaining frames, scored in the window ending at the last sample."""
        self.pre.push(np.zeros((self.pre.n_sources, 0), np.float32), final=True)
        n = self.pre.n_available
        if n <= self.pre.padlen or n < self.pre.n_forward:
            return []
        scored = self._score(n, -(-n // self.spf))
        return [] if scored is None else [scored]
