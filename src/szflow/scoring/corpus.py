"""Corpus scoring: every scorer over the same recordings, summed over recordings (never windows),
and the JSON contract of `szflow score --json` (DESIGN.md §8)."""

from __future__ import annotations

from szflow.scoring.events import prepare, total_duration
from szflow.scoring.nedc import score_ovlp, score_taes
from szflow.scoring.szcore import score_szcore

SCORERS: tuple[str, ...] = ("ovlp", "taes", "szcore_event", "szcore_sample")
_TITLES = {
    "ovlp": "NEDC OVLP",
    "taes": "NEDC TAES",
    "szcore_event": "SzCORE event",
    "szcore_sample": "SzCORE sample",
}


def score_corpus(recordings) -> dict:
    """{"duration_s", "recordings", "ovlp", "taes", "szcore_event", "szcore_sample"}; each scorer
    holds targets, tp, fp, fn, sensitivity (0-1) and fa_per_24h (SzCORE adds precision and f1)."""
    recs = prepare(recordings)
    event, sample = score_szcore(recs)
    return {
        "duration_s": total_duration(recs),
        "recordings": len(recs),
        "ovlp": score_ovlp(recs),
        "taes": score_taes(recs),
        "szcore_event": event,
        "szcore_sample": sample,
    }


def _number(value, decimals: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{decimals}f}"


def format_score_table(result: dict) -> str:
    """A readable table of a `score_corpus` result."""
    hours = result["duration_s"] / 3600.0
    lines = [f"{result['recordings']} recordings, {hours:.2f} h ({result['duration_s']:.1f} s)", ""]
    header = f"{'scorer':<14} {'targets':>8} {'TP':>9} {'FP':>9} {'FN':>9} {'sens %':>7} " \
             f"{'prec %':>7} {'F1':>6} {'FA/24h':>9}"
    lines += [header, "-" * len(header)]
    for key in SCORERS:
        block = result.get(key)
        if block is None:
            continue
        sens = None if block.get("sensitivity") is None else 100.0 * block["sensitivity"]
        prec = None if block.get("precision") is None else 100.0 * block["precision"]
        lines.append(
            f"{_TITLES[key]:<14} {_number(block['targets']):>8} {_number(block['tp']):>9} "
            f"{_number(block['fp']):>9} {_number(block['fn']):>9} {_number(sens):>7} "
            f"{_number(prec) if 'precision' in block else '':>7} "
            f"{_number(block.get('f1'), 3) if 'f1' in block else '':>6} {_number(block['fa_per_24h']):>9}"
        )
    lines += ["", "SzCORE sample counts are seconds (1 Hz label samples); TAES counts are fractional."]
    return "\n".join(lines)
