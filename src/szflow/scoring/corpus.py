"""Corpus scoring: every scorer over the same recordings, summed over recordings (never windows),
and the JSON contract of `szflow score --json` (DESIGN.md §8)."""

from __future__ import annotations

from szflow.scoring.events import prepare, total_duration
from szflow.scoring.intervals import INTERVAL_METHODS, bootstrap_ratio_interval, fa_interval, group_by_subject
from szflow.scoring.nedc import score_ovlp, score_taes
from szflow.scoring.szcore import TIMESCORING_VERSION, score_szcore, score_szcore_event_per_subject

SCORERS: tuple[str, ...] = ("ovlp", "taes", "szcore_event", "szcore_sample")
_TITLES = {
    "ovlp": "NEDC OVLP",
    "taes": "NEDC TAES",
    "szcore_event": "SzCORE event",
    "szcore_sample": "SzCORE sample",
}


def score_corpus(recordings) -> dict:
    """{"duration_s", "recordings", "subjects", "ovlp", "taes", "szcore_event", "szcore_sample",
    "szcore_event_subject_mean", "intervals", "timescoring_version"}.

    Each scorer holds targets, tp, fp, fn, sensitivity (0-1) and fa_per_24h, counted over all
    recordings together (pooled; SzCORE adds precision and f1). OVLP and SzCORE event also carry a
    95 % `fa_per_24h_interval` (exact Poisson on fp over the hours scored); OVLP a
    `sensitivity_interval` (patient-level bootstrap); `intervals` says how both were computed.
    `szcore_event_subject_mean` is SzCORE event scoring as the SzCORE benchmark averages it: the
    scores of each subject, then their mean over subjects."""
    recs = prepare(recordings)
    event, sample = score_szcore(recs)
    duration = total_duration(recs)
    ovlp = score_ovlp(recs)
    subjects = group_by_subject(recs)
    per_subject = [score_ovlp(group) for group in subjects.values()]
    ovlp["fa_per_24h_interval"] = fa_interval(ovlp["fp"], duration)
    ovlp["sensitivity_interval"] = bootstrap_ratio_interval([r["tp"] for r in per_subject],
                                                            [r["targets"] for r in per_subject])
    event["fa_per_24h_interval"] = fa_interval(event["fp"], duration)
    return {
        "duration_s": duration,
        "recordings": len(recs),
        "subjects": len(subjects),
        "ovlp": ovlp,
        "taes": score_taes(recs),
        "szcore_event": event,
        "szcore_sample": sample,
        "szcore_event_subject_mean": score_szcore_event_per_subject(subjects),
        "intervals": dict(INTERVAL_METHODS),
        "timescoring_version": TIMESCORING_VERSION,
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
    lines += ["", "Counts are pooled over recordings."]
    for key in ("ovlp", "szcore_event"):
        block = result.get(key) or {}
        fa = block.get("fa_per_24h_interval")
        sens = block.get("sensitivity_interval")
        parts = []
        if fa is not None:
            parts.append(f"FA/24h {_number(fa[0])}-{_number(fa[1])}")
        if sens is not None:
            parts.append(f"sensitivity {_number(100.0 * sens[0])}-{_number(100.0 * sens[1])} %")
        if parts:
            lines.append(f"{_TITLES[key]} 95 % interval: {', '.join(parts)}")
    if result.get("intervals"):
        lines.append(f"  (FA/24h: {result['intervals']['fa_per_24h']}; sensitivity: "
                     f"{result['intervals']['sensitivity']})")
    subject = result.get("szcore_event_subject_mean")
    if subject:
        sens = None if subject["sensitivity"] is None else 100.0 * subject["sensitivity"]
        prec = None if subject["precision"] is None else 100.0 * subject["precision"]
        lines.append(f"SzCORE event averaged per subject ({subject['subjects']} subjects, timescoring "
                     f"{result.get('timescoring_version')}): sens {_number(sens)} %, prec {_number(prec)} %, "
                     f"F1 {_number(subject['f1'], 3)}, FA/24h {_number(subject['fa_per_24h'])}")
    lines += ["SzCORE sample counts are seconds (1 Hz label samples); TAES counts are fractional."]
    return "\n".join(lines)
