"""The cache: per split one contiguous memory-mapped float16 array, labels and an index.

`SplitStore` reads windows; `build_cache` writes it (the `cache` stage driver,
`szflow.stages.cache`, calls it); samplers and datasets in `szflow.cache.sampler` and
`szflow.cache.dataset` (the latter imports torch).
"""

from szflow.cache.build import build_cache, build_split, check_preprocess_params
from szflow.cache.sampler import InferenceWindows, TrainingWindowSampler
from szflow.cache.store import CacheError, SplitStore, Window

__all__ = [
    "CacheError",
    "InferenceWindows",
    "SplitStore",
    "TrainingWindowSampler",
    "Window",
    "build_cache",
    "build_split",
    "check_preprocess_params",
]
