"""szflow: bidirectional-Mamba EEG seizure detection on TUSZ, tracked by DVC."""

__version__ = "0.1.0"
