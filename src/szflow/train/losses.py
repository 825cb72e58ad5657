"""Per-frame loss of the detector: BCE with a weight on seizure frames, averaged over valid frames only.

Padded frames (a window past the end of a recording) carry no label, so they must not pull the
logits towards background: the loss takes a boolean `mask` and ignores frames outside it.
The loss is computed in float32 even under autocast (log-sigmoid of bf16 logits is too coarse).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    pos_weight: float = 1.0,
) -> torch.Tensor:
    """Mean loss over the frames where `mask` is true (all frames when `mask` is None).

    `pos_weight` scales the seizure (positive) term: seizure frames are a minority even
    after balanced sampling. A batch with no valid frame gives a zero loss that still has a graph.
    """
    logits = logits.float()
    targets = targets.to(dtype=torch.float32, device=logits.device)
    if targets.shape != logits.shape:
        raise ValueError(f"targets {tuple(targets.shape)} do not match logits {tuple(logits.shape)}")
    weight = torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    per_frame = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight, reduction="none")
    if mask is None:
        return per_frame.mean()
    valid = mask.to(device=logits.device, dtype=torch.bool)
    if valid.shape != logits.shape:
        raise ValueError(f"mask {tuple(valid.shape)} does not match logits {tuple(logits.shape)}")
    count = valid.sum()
    # Sum over valid frames / their count; `where` (not multiply) keeps NaN logits in padding out.
    total = torch.where(valid, per_frame, torch.zeros_like(per_frame)).sum()
    return total / count.clamp_min(1).to(total.dtype)
