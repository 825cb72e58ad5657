"""Common average reference over the 19 electrodes of the 10-20 system."""

from __future__ import annotations

import numpy as np


def common_average_reference(block: np.ndarray) -> np.ndarray:
    """Subtract the mean over channels from every channel, in place; returns `block`.

    `block` is (channels, samples). The same reference is used whatever the recording's montage
    (ar, le, ar_a, BIDS), so the network always sees one input convention. Working in place keeps a
    1-hour recording at one (19, n) float32 buffer instead of two.
    """
    if block.ndim != 2:
        raise ValueError(f"expected a (channels, samples) block, got shape {block.shape}")
    # The (1, n) mean is the only temporary; summing rows of a C-ordered block is cache friendly.
    block -= block.mean(axis=0, dtype=block.dtype, keepdims=True)
    return block
