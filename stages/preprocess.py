"""DVC stage `preprocess`: every recording of the corpus -> data/preprocess (szflow.signal.pipeline).

Writes per recording `data/preprocess/<split>/<id>.npy` (float16, (19, n), 256 Hz) and `<id>.json`,
plus `data/preprocess/report.csv` (every recording, ok/failed, reason). Exits 1 only when more than
`preprocess.max_failed_fraction` of the recordings failed.
"""

from pathlib import Path

from szflow.signal.pipeline import run_preprocess
from szflow.stages.runner import stage_main

OUT_DIR = Path("data/preprocess")

if __name__ == "__main__":
    stage_main(lambda params: run_preprocess(params, OUT_DIR, progress=True))
