"""The 19 electrodes of a recording's signals, common-average referenced over those present."""

from __future__ import annotations

import numpy as np

from szflow.data.electrodes import ElectrodeMontage


def common_average_reference(block: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Subtract the mean over present channels from every present channel, in place; returns `block`.

    `block` is (channels, samples); `present` a (channels,) bool mask (None: all). Rows of absent
    channels are set to zero: the network reads them as absent (its presence mask), never as
    signal. The same reference is used whatever the recording's montage (ar, le, ar_a, bipolar,
    BIDS), so the network always sees one input convention; it also removes the constant the
    least-squares reconstruction of a bipolar montage leaves undetermined. Working in place keeps a
    1-hour recording at one (19, n) float32 buffer instead of two.
    """
    if block.ndim != 2:
        raise ValueError(f"expected a (channels, samples) block, got shape {block.shape}")
    if present is None or bool(np.all(present)):
        # The (1, n) mean is the only temporary; summing rows of a C-ordered block is cache friendly.
        block -= block.mean(axis=0, dtype=block.dtype, keepdims=True)
        return block
    rows = np.flatnonzero(present)
    block[~np.asarray(present, dtype=bool)] = 0.0
    if rows.size:
        block[rows] -= block[rows].mean(axis=0, dtype=block.dtype, keepdims=True)
    return block


def electrode_potentials(sources: np.ndarray, montage: ElectrodeMontage) -> np.ndarray:
    """(19, n) float32: the electrodes `montage` reads or reconstructs from (n_sources, n) signals at
    one rate, common-average referenced over the present ones (absent rows zero)."""
    block = montage.apply(sources)
    return common_average_reference(block, montage.present)
