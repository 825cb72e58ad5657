"""DVC stage `cache`: data/preprocess -> data/cache/<split>/{signals.npy, labels.npy, index.parquet,
manifest.json} (szflow.cache.build). Refuses, without touching it, a cache built from other inputs."""

from pathlib import Path

from szflow.cache.build import run_cache
from szflow.stages.runner import stage_main

PREPROCESS_DIR = Path("data/preprocess")
CACHE_DIR = Path("data/cache")

if __name__ == "__main__":
    stage_main(lambda params: run_cache(params, PREPROCESS_DIR, CACHE_DIR, progress=True))
