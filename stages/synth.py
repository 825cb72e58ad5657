"""DVC stage `synth`: write the embedded synthetic TUSZ-layout corpus to `data.root` (szflow.synth).

Only when `data.source` is `synthetic`; for a real corpus (tusz, bids) it writes nothing and
says so, since the corpus is then the user's own data.
"""

from __future__ import annotations

import json
from pathlib import Path

from szflow.config import Params, corpus_root
from szflow.io_utils import atomic_write_text
from szflow.stages.runner import stage_main

SYNTH_OUT = Path("data/synth")


def run(params: Params) -> None:
    if params.data.source != "synthetic":
        message = (f"synth: skipped, data.source is {params.data.source!r} (the corpus at "
                   f"{params.data.root} is used as it is)")
        # The DVC out must exist even when nothing is generated.
        atomic_write_text(SYNTH_OUT / "SKIPPED.txt", message + "\n")
        print(message)
        return
    from szflow.synth import generate_corpus

    summary = generate_corpus(corpus_root(params), params.synth)
    print(json.dumps({key: summary[key] for key in ("recordings", "hours", "seizures")}))


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
