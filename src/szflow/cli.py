"""`szflow` command line. Each command parses its arguments and calls the library; nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

from szflow import layout
from szflow.config import SPLITS, SynthConfig, load_params
from szflow.data.summary import format_summary, summarise_corpus
from szflow.detect import format_result, run_detect
from szflow.detect import format_summary as format_detect_summary
from szflow.errors import ConfigError, SzflowError
from szflow.experiments import runs_table
from szflow.model import describe_model
from szflow.remote.plan import build_plan, check_remote, checks_json, format_plan
from szflow.review import review_edfs, review_split, write_review
from szflow.scoring import format_score_table, score_folders
from szflow.scoring.intervals import certification_hours, format_certification_hours
from szflow.stream import format_stream_summary, run_stream
from szflow.synth import generate_corpus

app = typer.Typer(help="szflow: EEG seizure detection workflow (TUSZ, SzCORE), tracked by DVC.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
corpus_app = typer.Typer(help="Inspect a TUSZ or BIDS corpus.", no_args_is_help=True)
model_app = typer.Typer(help="Inspect the detector network.", no_args_is_help=True)
remote_app = typer.Typer(help="Remote (Modal) execution helpers.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(model_app, name="model")
app.add_typer(remote_app, name="remote")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=2)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the synthetic TUSZ-layout corpus into."),
    seed: int | None = typer.Option(None, help="Random seed; the same seed gives the same bytes (default from params)."),
    eval_seed: int | None = typer.Option(None, help="Seed of the eval split alone: another eval draw, train and "
                                                    "dev unchanged (default from params: synth.eval_seed)."),
    splits: list[str] | None = typer.Option(None, "--split", help="Write only this split (repeat for several); each is "
                                                      "written exactly as the whole corpus holds it."),
    train_patients: int | None = typer.Option(None, help="Patients in train (default from params)."),
    dev_patients: int | None = typer.Option(None, help="Patients in dev."),
    eval_patients: int | None = typer.Option(None, help="Patients in eval."),
    recordings_per_patient: int | None = typer.Option(None, help="Recordings per patient."),
    min_duration_s: float | None = typer.Option(None, help="Shortest recording, seconds."),
    max_duration_s: float | None = typer.Option(None, help="Longest recording, seconds."),
    broken_files: int | None = typer.Option(None, help="Deliberately broken files to include."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params",
                                     help="The params.yaml whose synth section gives the defaults."),
) -> None:
    """Generate a synthetic corpus in TUSZ layout (EDF + .csv + .csv_bi)."""
    try:
        base = load_params(params_file.parent).synth
        patients = dict(base.patients)
        for split, value in (("train", train_patients), ("dev", dev_patients), ("eval", eval_patients)):
            if value is not None:
                patients[split] = value
        overrides: dict = {"patients": patients}
        for key, value in (("seed", seed), ("eval_seed", eval_seed), ("recordings_per_patient", recordings_per_patient),
                           ("min_duration_s", min_duration_s), ("max_duration_s", max_duration_s),
                           ("broken_files", broken_files)):
            if value is not None:
                overrides[key] = value
        config = SynthConfig.model_validate({**base.model_dump(), **overrides})
        generate_corpus(out, config, splits=tuple(splits) if splits else SPLITS)
    except (SzflowError, ValueError) as exc:
        _fail(exc)


@corpus_app.command("summary")
def corpus_summary(
    root: Path = typer.Argument(..., help="Corpus folder (or the folder holding the split folders)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    targets: list[float] = typer.Option([10.0, 5.0, 2.5, 1.0], "--target",
                                        help="False alarms per 24 h to check the hours against (repeatable)."),
    between_split_dispersion: float | None = typer.Option(
        None, "--between-split-dispersion", min=1.0,
        help="How much more whole splits vary than their patients (default: eval.between_split_dispersion "
             "of the params.yaml in --params-dir, 1 without one)."),
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
) -> None:
    """Per split: patients, recordings, hours, seizures, montages, rates, failed files, and the
    hours each false-alarm target needs to be certified against the hours the split has."""
    try:
        if between_split_dispersion is None:
            between_split_dispersion = (load_params(params_dir).eval.between_split_dispersion
                                        if (params_dir / "params.yaml").is_file() else 1.0)
        summary = summarise_corpus(root)
    except (SzflowError, ValueError) as exc:
        _fail(exc)
    hours = {name: split["hours"] for name, split in summary["splits"].items()}
    summary["certification"] = certification_hours(hours, targets,
                                                   between_split_dispersion=between_split_dispersion)
    typer.echo(json.dumps(summary) if as_json else
               format_summary(summary) + "\n\n" + format_certification_hours(summary["certification"]))


@model_app.command("summary")
def model_summary(
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
) -> None:
    """Print the detector's layers and parameter count for the model in params.yaml."""
    try:
        params = load_params(params_dir)
    except SzflowError as exc:
        _fail(exc)
    typer.echo(describe_model(params.model))


@app.command()
def score(
    ref: Path = typer.Argument(..., help="Folder of reference .csv_bi (or SzCORE _events.tsv) files."),
    hyp: Path = typer.Argument(..., help="Folder of hypothesis files, paired with REF by file name."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON contract instead of a table."),
) -> None:
    """Score hypotheses against references: NEDC OVLP and TAES, SzCORE event and sample."""
    try:
        result = score_folders(ref, hyp)
    except SzflowError as exc:
        _fail(exc)
    typer.echo(json.dumps(result) if as_json else format_score_table(result))


@remote_app.command("plan")
def remote_plan(
    hw: str | None = typer.Option(None, "--hw", help="Hardware profile (params/<hw>.yaml); default: params.yaml's hw."),
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show what would run where (executor, GPU, CPUs, timeout, uploads, downloads). Needs no token."""
    try:
        plan = build_plan(load_params(params_dir, hw=hw), params_dir)
    except SzflowError as exc:
        _fail(exc)
    typer.echo(json.dumps(plan, indent=2) if as_json else format_plan(plan))


@remote_app.command("check")
def remote_check(
    hw: str | None = typer.Option(None, "--hw", help="Hardware profile (params/<hw>.yaml); default: params.yaml's hw."),
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (checks, and what is missing with its fix)."),
) -> None:
    """Check the Modal setup: token, client Python, image lock, the Modal Secrets the profile needs,
    app builds, volume reachable. Prints the command that fixes each failure; exit 1 if any fails."""
    try:
        params = load_params(params_dir, hw=hw)
        if params.hardware.executor != "modal":
            modal_profiles = sorted(path.stem for path in (params_dir / "params").glob("*.yaml")
                                    if load_params(params_dir, hw=path.stem).hardware.executor == "modal")
            raise ConfigError(
                f"profile {params.hw!r} runs on this machine (hardware.executor: {params.hardware.executor}); "
                f"check a Modal profile instead: "
                + (", ".join(f"szflow remote check --hw {name}" for name in modal_profiles) or "none found"))
        checks = check_remote(params)
    except SzflowError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(checks_json(checks), indent=2))
    else:
        for check in checks:
            typer.echo(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.message}")
            if check.fix:
                typer.echo(f"       fix: {check.fix}")
    failed = [check for check in checks if not check.ok]
    if failed:
        if not as_json:
            typer.echo(f"error: {len(failed)} check(s) failed: {', '.join(c.name for c in failed)}", err=True)
        raise typer.Exit(code=1)


@app.command()
def detect(
    inputs: list[Path] = typer.Argument(..., help="EDF files, or folders searched recursively for *.edf."),
    checkpoint: Path = typer.Option(layout.BEST_CHECKPOINT, "--checkpoint", help="Trained detector (best.pt)."),
    operating_point: str = typer.Option("10", "--operating-point",
                                        help="False alarms per 24 h to operate at: a key of operating_points.json."),
    operating_points: Path | None = typer.Option(
        None, "--operating-points", help="Operating points file (default: operating_points.json beside the checkpoint)."),
    out: Path = typer.Option(Path("detections"), "--out", help="Folder for the event files."),
    fmt: str = typer.Option("csv_bi", "--format", help="csv_bi (TUSZ) or tsv (SzCORE _events.tsv)."),
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda (default: the hardware profile's)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Windows per batch (default: the profile's)."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bars (default: when stderr is a terminal)."),
) -> None:
    """Detect seizures in EDF recordings; write one event file per recording. Exit 1 if any file failed."""
    def report(result) -> None:
        if result.status == "ok":
            typer.echo(format_result(result))
        else:
            typer.echo(f"error: {result.message}", err=True)

    try:
        summary = run_detect(
            inputs, checkpoint=checkpoint, operating_point=operating_point, operating_points=operating_points,
            out_dir=out, fmt=fmt, params_dir=params_dir, device=device, batch_size=batch_size,
            progress=sys.stderr.isatty() if progress is None else progress, on_result=report,
            on_warning=lambda message: typer.echo(f"warning: {message}", err=True),
        )
    except SzflowError as exc:
        _fail(exc)
    typer.echo(format_detect_summary(summary))
    if summary.failed:
        raise typer.Exit(code=1)


@app.command()
def stream(
    name: str | None = typer.Option(None, "--name", help="LSL stream name to connect to."),
    source_id: str | None = typer.Option(None, "--source-id", help="LSL source id to connect to (instead of --name)."),
    checkpoint: Path = typer.Option(layout.BEST_CHECKPOINT, "--checkpoint", help="Trained detector (best.pt)."),
    operating_point: str = typer.Option("10", "--operating-point",
                                        help="False alarms per 24 h to operate at: a key of operating_points.json."),
    operating_points: Path | None = typer.Option(
        None, "--operating-points", help="Operating points file (default: operating_points.json beside the checkpoint)."),
    out: Path = typer.Option(Path("detections"), "--out", help="Folder for the event files."),
    fmt: list[str] = typer.Option(["csv_bi", "tsv"], "--format",
                                  help="csv_bi (TUSZ) and/or tsv (SzCORE _events.tsv); repeat for both (default)."),
    lookahead_s: float | None = typer.Option(None, "--lookahead-s",
                                             help="Seconds of future the detector sees before a frame is final "
                                                  "(default: params stream.lookahead_s)."),
    duration_s: float | None = typer.Option(None, "--duration-s", help="Stop after this many seconds of EEG."),
    replay: Path | None = typer.Option(None, "--replay", help="Play this EDF as an LSL stream and detect on it."),
    speed: float = typer.Option(1.0, "--speed", help="Replay speed, times real time."),
    recording: str | None = typer.Option(None, "--recording-id",
                                         help="Name of the event files (default: the stream name and start time)."),
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda (default: the hardware profile's)."),
) -> None:
    """Detect seizures live on a Lab Streaming Layer EEG stream: alarms, event files, LSL markers.
    Ctrl-C closes the open event and exits 0; a stream that vanishes or changes channels exits 1."""
    try:
        summary = run_stream(name=name, source_id=source_id, checkpoint=checkpoint, operating_point=operating_point,
                             operating_points=operating_points, out_dir=out, formats=tuple(fmt),
                             params_dir=params_dir, device=device, lookahead_s=lookahead_s, duration_s=duration_s,
                             replay=replay, speed=speed, recording=recording, echo=typer.echo,
                             on_warning=lambda message: typer.echo(f"warning: {message}", err=True))
    except SzflowError as exc:
        _fail(exc)
    typer.echo(format_stream_summary(summary))
    if summary.error:
        typer.echo(f"error: {summary.error}", err=True)
        raise typer.Exit(code=1)


@app.command()
def review(
    sources: list[Path] = typer.Argument(..., help="EDF files or folders (as given to `szflow detect`), or one pipeline "
                                                   "predictions folder holding tracks.npz (e.g. predictions/eval)."),
    out: Path = typer.Option(Path("review.html"), "--out", help="The HTML page to write."),
    checkpoint: Path = typer.Option(layout.BEST_CHECKPOINT, "--checkpoint", help="Trained detector (best.pt)."),
    operating_points: Path | None = typer.Option(
        None, "--operating-points", help="Operating points file (default: operating_points.json beside the checkpoint)."),
    corpus: Path | None = typer.Option(None, "--corpus", help="For a predictions folder: the corpus holding its EDFs "
                                                             "(default: params.yaml's data.root)."),
    params_dir: Path = typer.Option(Path("."), "--params-dir", help="Project folder holding params.yaml."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda (default: the hardware profile's)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Windows per batch (default: the profile's)."),
) -> None:
    """Write one self-contained HTML page to review detections: EEG traces, probability, events, keys."""
    points = operating_points or checkpoint.parent / "operating_points.json"
    try:
        params = load_params(params_dir)
        if len(sources) == 1 and (sources[0] / layout.NETWORK_TRACKS).is_file():
            inputs = review_split(sources[0], corpus or params_dir / params.data.root, params, checkpoint=checkpoint,
                                  operating_points=points, tracks_name=layout.NETWORK_TRACKS)
        else:
            inputs = review_edfs(sources, params, checkpoint=checkpoint, operating_points=points, device=device,
                                 batch_size=batch_size, on_failure=lambda message: typer.echo(f"error: {message}", err=True))
        write_review(out, inputs)
    except SzflowError as exc:
        _fail(exc)
    for message in inputs.provenance["warnings"]:
        typer.echo(f"warning: {message}", err=True)
    typer.echo(f"wrote {out} ({len(inputs.recordings)} recording(s), {out.stat().st_size / 1e6:.1f} MB)")
    if inputs.failures:
        raise typer.Exit(code=1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def runs(ctx: typer.Context) -> None:
    """Compare experiments on a 120-column terminal: the params people change and the eval headline
    metrics, one line each (from `dvc exp show --json`; its options pass through, e.g. `szflow runs -A`).
    Every column: `dvc exp show`."""
    result = subprocess.run(["dvc", "exp", "show", "--json", *ctx.args], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        typer.echo(result.stderr.strip(), err=True)
        raise typer.Exit(code=result.returncode)
    typer.echo(runs_table(json.loads(result.stdout)))


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except SzflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
