"""Benchmark: `szflow stream` against `szflow detect` (agreement, alarm latency) and its speed.

    python benchmarks/bench_stream.py agreement [--root .] [--split eval] [--lookahead 0 5 10]
                                               [--lsl 4] [--speed 50] [--limit N] [--only-seizures]
                                               [--out DIR] [--shard K/N] [--merge]
    python benchmarks/bench_stream.py speed [--hours 24] [--cache /tmp/szflow_bench] [--lsl-minutes 10]

agreement: for every EDF of the split (data.root/edf/<split>, with its .csv_bi reference):
  - offline: `szflow.detect.predict_file` (the `szflow detect` path) -> probability track -> events
    at every frozen operating point (`events_of_track`);
  - online: the same EDF fed in 0.5 s blocks through the stream's own code in this process
    (`feed_recording` into a `StreamSession`: online preprocessing, hop scoring, lookahead), once
    per lookahead; its final frames go through `OnlineEvents` (the online post-processor) at every
    operating point, block by block as the session emits them. The first `--lsl` recordings are
    also replayed through real LSL (`run_stream --replay`, `--speed` x real time, the default
    operating point) and their events compared with the in-process ones (they must be identical:
    probabilities do not depend on how samples arrive).
  Each recording's measurements are appended to OUT/records-KofN.jsonl as one JSON line when it is
  done, so a rerun resumes where a cut run stopped; `--shard K/N` measures every N-th recording
  (run N shards at once, one torch thread each: OMP_NUM_THREADS=1), and `--merge` (measuring nothing)
  reports over all the shards' files in OUT.
  Reported per lookahead: frame-level |p_online - p_offline| (max, mean), OVLP agreement of the
  two event sets (offline events matched by an online event, online events matching none), OVLP
  sensitivity and FA/24h against the reference both ways at each operating point, and alarm
  latency (reference onset -> alarm, stream time, over the detected reference seizures: median,
  90th percentile) for both alarm rules (`stream.alarm_at`): `onset`, raised when the event's first
  frame above the threshold is final, and `confirmed`, when the frame that completes the event's
  minimum duration is; either becomes final when the sample `lookahead` after it arrives. For
  `onset`, the alarms withdrawn (events that ended shorter than the minimum duration) and the
  alarm false alarms per 24 h (kept events and withdrawn alarms overlapping no reference seizure).
speed: a long EEG recording (bench_detect_24h's EDF writer, cached) fed in 1 s blocks through the
  stream's code in this process as fast as it goes: EEG seconds per wall second (real-time
  factor) and the resident memory after 1 h and at the end (VmRSS; the peak too), plus
  `--lsl-minutes` of it replayed through LSL as fast as the player goes.
Model: `--checkpoint` (default models/best.pt of --root) and its operating_points.json. Ends with one
JSON line. Targets (issue 22): stream sensitivity within 0.03 of offline at no more FA, median
latency <= 10 s at lookahead <= 10 s, >= 20x real time, RSS at 24 h within 10 % of 1 h.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_detect_24h import cached_edf
from common import REPO_ROOT, emit, print_header

from szflow.config import load_params
from szflow.data.annotations import read_csv_bi
from szflow.data.edf import read_edf_header, read_eeg, read_records, resolve_header
from szflow.detect import predict_file
from szflow.inference import resolve_device, resolve_precision
from szflow.model.checkpoint import load_detector
from szflow.operating_points import read_operating_points
from szflow.postprocess import events_of_track
from szflow.scoring import RecordingEvents, score_corpus
from szflow.scoring.nedc import ovlp_counts
from szflow.stream import OnlineDetector, OnlineEvents, StreamSession, run_stream
from szflow.stream.postprocess_online import ALARM_AT
from szflow.stream.runner import feed_recording


def load(root: Path, checkpoint: Path | None, points_path: Path | None):
    params = load_params(root)
    device = resolve_device(params.hardware.device)
    precision = resolve_precision(params.hardware.precision, device)
    checkpoint = checkpoint or root / "models" / "best.pt"
    model, _ = load_detector(checkpoint, expected_config=params.model, mamba_impl=params.hardware.mamba_impl,
                                device=device)
    frozen = read_operating_points(points_path or checkpoint.parent / "operating_points.json")
    return params, model.eval(), device, precision, frozen["detector"], checkpoint


def session_for(model, params, rate, montage, lookahead_s, device, precision, point) -> StreamSession:
    cfg = params.stream
    session = StreamSession(lambda: OnlineDetector(model, params, rate, montage, hop_s=cfg.hop_s,
                                                   lookahead_s=lookahead_s,
                                                   stats_window_s=cfg.stats_window_s, device=device,
                                                   precision=precision), point, rate)
    session.frame_log = []
    return session


def online_events(frame_log, point, frame_rate_hz, duration_s, lookahead_s, alarm_at):
    """(events, {event start: alarm time}, withdrawn alarm spans) of the session's final frames at
    `point`, alarms by `alarm_at`; times in stream time, an alarm when the sample `lookahead_s`
    after its newest final frame has arrived."""
    events = OnlineEvents(point, frame_rate_hz, alarm_at=alarm_at)
    closed, alarms = [], []
    for _, block in frame_log:
        a, c = events.add(block.first_frame, block.probabilities)
        alarms += [(x, x.at_s + lookahead_s) for x in a]
        closed += c
    a, c = events.finish(duration_s)
    alarms += [(x, duration_s) for x in a]  # raised at the stream's end
    closed += c
    withdrawn = [(x.onset_s, x.withdrawn_stop_s) for x, _ in alarms if x.withdrawn]
    raised = {x.onset_s: t for x, t in alarms if not x.withdrawn}
    return [(e.start_s, e.stop_s) for e in closed], {e.start_s: raised[e.start_s] for e in closed}, withdrawn


def latencies(reference, events, alarm_at) -> list[float]:
    """Per detected reference seizure: first alarm of an overlapping event minus the onset."""
    out = []
    for r_start, r_stop in reference:
        times = [alarm_at[a] for a, b in events if b > r_start and a < r_stop]
        if times:
            out.append(min(times) - r_start)
    return out


def false_alarms(reference, spans) -> int:
    """Alarm spans (events, or withdrawn alarms from onset to end) overlapping no reference seizure."""
    return sum(not any(b > r_start and a < r_stop for r_start, r_stop in reference) for a, b in spans)


def measure_recording(edf: Path, args, params, model, device, precision, points, checkpoint, lsl: bool) -> dict:
    """One recording's offline and online events (every lookahead and point), latencies and
    probability differences: a JSON-able record, so a long run can resume and shards can merge."""
    reference_ann = read_csv_bi(edf.with_suffix(".csv_bi"))
    track = predict_file(edf, model, params)
    # The signals a stream of this EDF carries (its montage's); an EDF+D file (gaps) is refused here.
    recording = read_eeg(edf, min_electrodes=params.preprocess.min_electrodes)
    reference = [(e.start, e.stop) for e in reference_ann.events if e.label != "bckg"]
    duration = track.duration_s
    first_key = next(iter(points))
    out = {"name": str(edf), "duration_s": duration, "reference": reference,
           "offline": {key: events_of_track(track, point) for key, point in points.items()}, "online": {}}
    for la in args.lookahead:
        session = session_for(model, params, recording.sample_rates[0], recording.montage, la, device,
                              precision, points[first_key])
        feed_recording(session, recording)
        p_online = np.concatenate([b.probabilities for _, b in session.frame_log])
        n = min(p_online.size, track.probabilities.size)
        d = np.abs(p_online[:n] - track.probabilities[:n])
        row = {"diff_max": float(d.max()), "diff_sum": float(d.sum()), "frames": int(n), "points": {}}
        for key, point in points.items():
            entry = {}
            for rule in ALARM_AT:
                events, alarm_times, withdrawn = online_events(session.frame_log, point, track.frame_rate_hz,
                                                               duration, la, rule)
                entry[f"latency_{rule}"] = latencies(reference, events, alarm_times)
                if rule == "onset":
                    entry["withdrawn"] = len(withdrawn)
                    entry["alarm_false_alarms"] = false_alarms(reference, events + withdrawn)
            entry["events"] = events
            hits, _, fas = ovlp_counts(out["offline"][key], events)
            entry["agree"] = [hits, len(out["offline"][key]), fas, len(events)]
            if lsl and la == args.lookahead[0] and key == first_key:
                summary = run_stream(replay=edf, speed=args.speed, checkpoint=checkpoint, params_dir=args.root,
                                     operating_point=key, lookahead_s=la, out_dir=args.out, echo=lambda _: None,
                                     handle_signals=False, status=False)
                streamed = [(e.start_s, e.stop_s) for e in summary.events]
                entry["lsl_identical"] = bool(len(streamed) == len(events)
                                              and np.allclose(streamed, events, atol=1e-6))
            row["points"][key] = entry
        out["online"][str(la)] = row
    return out


def agreement(args) -> dict:
    """Measure every recording of this shard not yet in OUT/records-*.jsonl (or `--records`): one JSON
    line each, appended as it is done, so an interrupted run resumes and shards merge; then report
    over all of them. Records in OUT must hold every `--lookahead` asked (they may hold more)."""
    params, model, device, precision, points, checkpoint = load(args.root, args.checkpoint, args.operating_points)
    folder = args.root / params.data.root / "edf" / args.split
    edfs = sorted(folder.rglob("*.edf"))
    if args.only_seizures:  # latency needs seizures; the hour-long background recordings cost 15x an hour
        edfs = [edf for edf in edfs if edf.with_suffix(".csv_bi").is_file()
                and any(e.label != "bckg" for e in read_csv_bi(edf.with_suffix(".csv_bi")).events)]
    edfs = edfs[: args.limit or None]
    if args.merge:  # report only: every shard's records in OUT
        return report(sorted(args.out.glob("records-*.jsonl")), args, params, list(points))
    shard, shards = (int(x) for x in args.shard.split("/"))
    mine = edfs[shard::shards]
    records_file = args.records or args.out / f"records-{shard}of{shards}.jsonl"
    records_file.parent.mkdir(parents=True, exist_ok=True)
    # Every records file in OUT counts: a recording another shard (or an earlier run) measured is not redone.
    done = {record["name"] for path in {*args.out.glob("records-*.jsonl"), records_file} if path.is_file()
            for record in read_records_file(path)}
    end_cut_line(records_file)
    started = time.perf_counter()
    for index, edf in enumerate(mine):
        if str(edf) in done:
            continue
        try:
            record = measure_recording(edf, args, params, model, device, precision, points, checkpoint,
                                       lsl=edfs.index(edf) < args.lsl)
        except Exception as exc:  # noqa: BLE001 - the broken files of the corpus are reported and skipped
            record = {"name": str(edf), "skipped": str(exc)}
        with open(records_file, "a") as handle:  # one whole line per recording: a cut run loses at most one
            handle.write(json.dumps(record) + "\n")
        print(f"{index + 1}/{len(mine)} {edf.name} {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return report(sorted(args.out.glob("records-*.jsonl")) if args.records is None else [records_file], args,
                  params, list(points))


def end_cut_line(path: Path) -> None:
    """End the last line of a records file that a killed run left unfinished, so the next record
    appended starts a line of its own (the cut one is then left out by `read_records_file`)."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def read_records_file(path: Path) -> list[dict]:
    """The records of one file; a line cut short by a killed run is left out (that recording is
    measured again)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"{path}: an unfinished line left out", file=sys.stderr)
    return records


def report(files, args, params, keys: list[str]) -> dict:
    records = [record for path in files for record in read_records_file(path)]
    skipped = [f"{Path(r['name']).name}: {r['skipped']}" for r in records if "skipped" in r]
    records = [r for r in records if "skipped" not in r]
    hours = sum(r["duration_s"] for r in records) / 3600
    lsl = [r["online"][str(args.lookahead[0])]["points"][keys[0]].get("lsl_identical") for r in records]
    result = {"recordings": len(records), "hours": hours, "skipped": skipped, "hop_s": params.stream.hop_s,
              "lsl_replayed": sum(x is not None for x in lsl), "lsl_identical_to_in_process": sum(bool(x) for x in lsl),
              "offline": {}, "by_lookahead": {}}
    for key in keys:
        result["offline"][key] = score_corpus([RecordingEvents(r["name"], r["duration_s"], r["reference"],
                                                               r["offline"][key]) for r in records])["ovlp"]
    for la in map(str, args.lookahead):
        rows = [r["online"][la] for r in records]
        frames = sum(x["frames"] for x in rows)
        row = {"p_abs_diff_max": max((x["diff_max"] for x in rows), default=0.0),
               "p_abs_diff_mean": sum(x["diff_sum"] for x in rows) / max(1, frames), "points": {}}
        for key in keys:
            entries = [x["points"][key] for x in rows]
            hits, n_off, fas, n_on = (sum(e["agree"][i] for e in entries) for i in range(4))
            row["points"][key] = {
                "online_ovlp": score_corpus([RecordingEvents(r["name"], r["duration_s"], r["reference"], e["events"])
                                             for r, e in zip(records, entries)])["ovlp"],
                "offline_events_matched": hits / n_off if n_off else 1.0, "offline_events": n_off,
                "online_events_unmatched": fas, "online_events": n_on,
                "alarms_withdrawn": sum(e["withdrawn"] for e in entries),
                "alarm_fa_per_24h": sum(e["alarm_false_alarms"] for e in entries) * 24 / hours if hours else None,
                **{f"latency_{rule}": latency_summary([v for e in entries for v in e[f"latency_{rule}"]])
                   for rule in ALARM_AT},
            }
        result["by_lookahead"][la] = row
    print(f"{len(records)} recordings, {hours:.2f} h; skipped {len(skipped)}")
    print_table(result, keys)
    return result


def latency_summary(values: list[float]) -> dict:
    array = np.asarray(values)
    return {"median_s": float(np.median(array)) if array.size else None,
            "p90_s": float(np.percentile(array, 90)) if array.size else None, "n": int(array.size)}


def print_table(result: dict, keys: list[str]) -> None:
    print(f"{'lookahead':>9} {'point':>6} {'sens off':>8} {'sens on':>8} {'FA off':>7} {'FA on':>7} "
          f"{'agree':>6} {'extra':>5} {'onset med/p90':>13} {'confirmed med/p90':>17} {'alarm FA':>8} "
          f"{'withdrawn':>9} {'|dp| max':>8} {'mean':>7}")
    for la, row in result["by_lookahead"].items():
        for key in keys:
            off, on = result["offline"][key], row["points"][key]
            fmt = lambda v: "-" if v is None else f"{v:.1f}"
            print(f"{la:>9} {key:>6} {off['sensitivity']:8.3f} {on['online_ovlp']['sensitivity']:8.3f} "
                  f"{off['fa_per_24h']:7.2f} {on['online_ovlp']['fa_per_24h']:7.2f} "
                  f"{on['offline_events_matched']:6.3f} {on['online_events_unmatched']:5d} "
                  f"{fmt(on['latency_onset']['median_s'])}/{fmt(on['latency_onset']['p90_s'])} "
                  f"{fmt(on['latency_confirmed']['median_s']):>9}/{fmt(on['latency_confirmed']['p90_s'])} "
                  f"{on['alarm_fa_per_24h'] or 0:8.2f} {on['alarms_withdrawn']:9d} {row['p_abs_diff_max']:8.4f} "
                  f"{row['p_abs_diff_mean']:7.4f}")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def speed(args) -> dict:
    params, model, device, precision, points, checkpoint = load(args.root, args.checkpoint, args.operating_points)
    edf = cached_edf(args.cache, args.hours)
    header = read_edf_header(edf)
    montage = resolve_header(header, params.preprocess.min_electrodes)
    chosen = list(montage.sources)
    rate = header.sample_rates[chosen[0]]
    session = session_for(model, params, rate, montage, params.stream.lookahead_s, device, precision,
                          next(iter(points.values())))
    session.frame_log = None  # constant memory: nothing kept per frame
    rss_1h = None
    started = time.perf_counter()
    with open(edf, "rb") as handle:
        for record in range(0, header.n_records, 60):  # one minute of records at a time
            count = min(60, header.n_records - record)
            signals = read_records(handle, header, chosen, record, count)
            data = np.stack(signals)
            for first in range(0, data.shape[1], round(rate)):
                session.feed(data[:, first:first + round(rate)])
            if rss_1h is None and session.stream_s >= 3600:
                rss_1h = rss_mb()
                hour_wall = time.perf_counter() - started
                print(f"1 h of EEG in {hour_wall:.0f} s, RSS {rss_1h:.0f} MB", file=sys.stderr)
    session.close()
    wall = time.perf_counter() - started
    rss_end = rss_mb()
    result = {"hours": args.hours, "wall_s": wall, "realtime_factor": session.stream_s / wall,
              "rss_1h_mb": rss_1h, "rss_end_mb": rss_end,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "hop_s": params.stream.hop_s, "lookahead_s": params.stream.lookahead_s}
    if args.lsl_minutes > 0:
        short = cached_edf(args.cache, max(10.0, args.lsl_minutes) / 60)  # its writer works in 10-minute pieces
        summary = run_stream(replay=short, speed=args.lsl_speed, checkpoint=checkpoint, params_dir=args.root,
                             out_dir=args.cache / "stream_out", echo=lambda _: None, handle_signals=False, status=False)
        result["lsl_replay"] = {"eeg_s": summary.stream_s, "wall_s": summary.wall_s,
                                "realtime_factor": summary.realtime_factor, "speed_asked": args.lsl_speed}
    print(f"{args.hours} h of EEG in {wall:.0f} s: {result['realtime_factor']:.1f}x real time; RSS "
          f"{rss_1h} MB at 1 h, {rss_end:.0f} MB at the end")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("agreement", "speed"))
    parser.add_argument("--root", type=Path, default=REPO_ROOT)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--operating-points", type=Path, default=None)
    parser.add_argument("--split", default="eval")
    parser.add_argument("--lookahead", type=float, nargs="+", default=[0.0, 5.0, 10.0])
    parser.add_argument("--lsl", type=int, default=4, help="recordings also replayed through real LSL")
    parser.add_argument("--speed", type=float, default=50.0, help="LSL replay speed (agreement)")
    parser.add_argument("--limit", type=int, default=0, help="first N recordings only (0: all)")
    parser.add_argument("--only-seizures", action="store_true", help="only recordings with seizures (agreement)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/szflow_bench/stream_agreement"))
    parser.add_argument("--shard", default="0/1", help="K/N: this run measures recordings K, K+N, ... (agreement)")
    parser.add_argument("--records", type=Path, default=None,
                        help="per-recording JSON lines (default OUT/records-KofN.jsonl); a rerun resumes it")
    parser.add_argument("--merge", action="store_true",
                        help="measure nothing; report over every OUT/records-*.jsonl (the shards of one run)")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/szflow_bench"))
    parser.add_argument("--lsl-minutes", type=float, default=10.0, help="EEG replayed through LSL (>= 10)")
    parser.add_argument("--lsl-speed", type=float, default=200.0)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    header = print_header(f"bench_stream {args.what}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = agreement(args) if args.what == "agreement" else speed(args)
    emit({"benchmark": f"stream_{args.what}", "machine": header, **result})


if __name__ == "__main__":
    main()
