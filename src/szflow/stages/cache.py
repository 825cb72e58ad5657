"""Stage `cache`: data/preprocess -> data/cache/<split>/{signals.npy, labels.npy, index.parquet,
manifest.json} (szflow.cache.build). Refuses, without touching it, a cache built from other inputs,
and preprocess outputs made with other params than params.yaml's.
"""

from __future__ import annotations

from pathlib import Path

from szflow import layout
from szflow.cache import build_cache, check_preprocess_params
from szflow.config import Params
from szflow.stages.runner import stage_main


def run(params: Params, workdir: Path = Path("."), progress: bool = True) -> dict:
    workdir = Path(workdir)
    preprocess_dir, cache_dir = workdir / layout.PREPROCESS_DIR, workdir / layout.CACHE_DIR
    check_preprocess_params(preprocess_dir, params.section_hash("preprocess"))
    built = build_cache(preprocess_dir, cache_dir, progress=progress)
    return {split: folder.as_posix() for split, folder in built.items()}


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
