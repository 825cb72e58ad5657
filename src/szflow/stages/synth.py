"""Stage `synth`: write the embedded synthetic TUSZ-layout corpus to `data.root` (szflow.synth).

Only when `data.source` is `synthetic`; for a real corpus (tusz, bids) it writes only
data/synth/SKIPPED.txt and says so, since the corpus is then the user's own data.
"""

from __future__ import annotations

import json
from pathlib import Path

from szflow import layout
from szflow.config import Params, corpus_root
from szflow.io_utils import atomic_write_text
from szflow.stages.runner import stage_main
from szflow.synth import generate_corpus


def run(params: Params, workdir: Path = Path(".")) -> dict:
    workdir = Path(workdir)
    if params.data.source != "synthetic":
        message = (f"synth: skipped, data.source is {params.data.source!r} (the corpus at "
                   f"{params.data.root} is used as it is)")
        # The DVC out must exist even when nothing is generated.
        atomic_write_text(workdir / layout.SYNTH_SKIPPED, message + "\n")
        print(message)
        return {"skipped": message}
    summary = generate_corpus(corpus_root(params), params.synth)
    result = {key: summary[key] for key in ("recordings", "hours", "seizures")}
    print(json.dumps(result))
    return result


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
