"""`szflow review`: the page's data (traces are the network input, events are postprocess's), the
eval review page of the plots stage, and the page itself in headless Chromium (no console error, no
network, keyboard navigation, operating point switching against `szflow detect`'s files, zoom
levels and decimation, the bipolar montage).

A tiny project is built once: a synthetic eval split, a random tiny detector, operating points
at quantiles of its own probabilities (so each point has events: hits, misses and false alarms),
the eval stage, `szflow detect` at every operating point, and `szflow review` of the EDFs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright
from test_detect import eeg_like
from typer.testing import CliRunner

from szflow.cli import app
from szflow.config import ELECTRODES, load_params
from szflow.data.annotations import read_csv_bi
from szflow.edf_store import prepare_store
from szflow.evaluate import read_tracks
from szflow.model.checkpoint import load_detector, save_checkpoint
from szflow.postprocess import SETTINGS_KEYS, probs_to_events
from szflow.review import ReviewInputs, ReviewRecording, TraceSegment, write_review
from szflow.review.data import (
    DETAIL_PAD_S,
    INT8_STEPS,
    detail_spans,
    read_segment,
    review_recording,
    to_int8,
    trace_budget_bytes,
    whole_rate,
)
from szflow.review.page import DOUBLE_BANANA
from szflow.review.sources import errors_first, frozen_points, review_split
from szflow.scoring import ProbabilityTrack, ovlp_counts
from szflow.stages.plots import write_eval_review
from szflow.synth.writer import EdfSignal, write_edf_signals

runner = CliRunner()
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# ----------------------------------------------------------------------------- the tiny project
@pytest.fixture(scope="module")
def project(tmp_path_factory, eval_project) -> Path:
    root = tmp_path_factory.mktemp("review") / "proj"
    points = eval_project(root, {"seed": 11, "patients": {"train": 0, "dev": 0, "eval": 2},
                                 "recordings_per_patient": 2, "min_duration_s": 120, "max_duration_s": 240,
                                 "broken_files": 0}, params_hash="feedc0de")
    for key in points:
        result = runner.invoke(app, ["detect", str(root / "corpus" / "edf" / "eval"), "--params-dir", str(root),
                                     "--checkpoint", str(root / "models" / "best.pt"), "--operating-point", key,
                                     "--out", str(root / "detect" / f"fa{key}"), "--no-progress"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["review", str(root / "corpus" / "edf" / "eval"), "--out", str(root / "review.html"),
                                 "--params-dir", str(root), "--checkpoint", str(root / "models" / "best.pt")])
    assert result.exit_code == 0, result.output
    return root


def page_meta(path: Path) -> dict:
    text = path.read_text()
    start = text.index('id="review-meta">') + len('id="review-meta">')
    return json.loads(text[start:text.index("</script>", start)])


def detect_events(project: Path, key: str) -> dict[str, list[tuple[float, float]]]:
    files = sorted((project / "detect" / f"fa{key}").rglob("*.csv_bi"))
    assert files
    return {f.stem: [(e.start, e.stop) for e in read_csv_bi(f).events if e.is_seizure] for f in files}


# ----------------------------------------------------------------------------- the page's data
def test_page_traces_are_the_network_input(project: Path) -> None:
    """Stored at the network's rate (short recordings), as int8 steps of the float16 network input."""
    params = load_params(project)
    edf = min((project / "corpus" / "edf" / "eval").rglob("*.edf"))
    track = read_tracks(project / "predictions" / "eval" / "tracks.npz")[0]
    rec = review_recording(edf, track, params, {}, reference=[])
    (segment,) = rec.segments
    store = prepare_store(edf, params, window_s=params.sampler.window_s)
    signals = store.span(0, 0, store.length(0))[0]
    assert segment.rate_hz == params.preprocess.sample_rate_hz and segment.start_s == 0
    np.testing.assert_array_equal(segment.data, to_int8(signals, params.preprocess.clip))
    assert rec.step == pytest.approx(params.preprocess.clip / INT8_STEPS)
    # One int8 step is the quantisation: the stored traces are within half a step of the input.
    assert np.abs(segment.data * rec.step - signals.astype(np.float32)).max() <= rec.step / 2 + 1e-3
    assert [e["electrode"] for e in rec.montage["read"]] == list(ELECTRODES)
    assert rec.montage["missing"] == [] and rec.montage["reconstructed"] == []


def test_page_counts_are_ovlp_of_postprocess_events(project: Path) -> None:
    meta = page_meta(project / "review.html")
    points = frozen_points(project / "models" / "operating_points.json", 7)
    tracks = {t.recording_id: t for t in read_tracks(project / "predictions" / "eval" / "tracks.npz")}
    assert [r["id"] for r in meta["recordings"]] == sorted(tracks)
    assert meta["provenance"]["step"] == 7 and meta["provenance"]["params_hash"] == "feedc0de"
    assert meta["provenance"]["model_config"]["n_layers"] == load_params(project).model.n_layers
    for rec in meta["recordings"]:
        track = tracks[rec["id"]]
        for key, point in points.items():
            events = probs_to_events(track.probabilities, track.frame_rate_hz, duration_s=track.duration_s,
                                     **{k: point[k] for k in SETTINGS_KEYS})
            hits, misses, false_alarms = ovlp_counts(rec["reference"], events)
            assert rec["counts"][key] == {"events": len(events), "hits": hits, "misses": misses,
                                          "false_alarms": false_alarms}


def test_long_recordings_keep_full_rate_around_events() -> None:
    assert whole_rate(3600, 256.0) == 128.0  # 1 h: 8.8 MB of int8 traces
    assert whole_rate(24 * 3600, 256.0) == 32.0
    assert whole_rate(600, 256.0) == 256.0
    # What the budgets leave for the page (base64: 4/3): under the targets of 15 and 120 MB.
    assert trace_budget_bytes(3600) * 4 / 3 < 14.5e6 and trace_budget_bytes(24 * 3600) * 4 / 3 < 114e6
    spans = detail_spans([(100.2, 130.0), (150.0, 160.0), (5000.0, 5010.0)], duration_s=6000, max_s=1e9)
    assert spans == [(70.0, 190.0), (5000 - DETAIL_PAD_S, 5040.0)]
    assert detail_spans([(0.0, 10.0)], duration_s=20, max_s=1e9) == [(0.0, 20.0)]
    # The cap keeps whole stretches, the shortest first.
    events = [(100, 200), (1000, 1010), (3000, 3020)]
    assert detail_spans(events, duration_s=5000, max_s=100) == [(970.0, 1040.0)]
    assert detail_spans(events, duration_s=5000, max_s=150) == [(970.0, 1040.0), (2970.0, 3050.0)]


def test_chunked_reading_equals_one_piece(project: Path) -> None:
    """Reading in pieces (as a chunked 24 h store must be read) gives the samples of one read, at
    the network's rate; at a lower rate the pieces join without seams (one-second settling margins)."""
    params = load_params(project)
    edf = min((project / "corpus" / "edf" / "eval").rglob("*.edf"))
    store = prepare_store(edf, params, window_s=params.sampler.window_s)
    n, rate, clip = store.length(0), store.sample_rate_hz, params.preprocess.clip
    whole = read_segment(store, 0, n, rate, rate, clip, piece=n)
    np.testing.assert_array_equal(read_segment(store, 0, n, rate, rate, clip, piece=1000), whole)
    low_whole = read_segment(store, 0, n, rate, 64.0, clip, piece=n + 2 * int(rate))
    low_pieces = read_segment(store, 0, n, rate, 64.0, clip, piece=4096)
    assert low_pieces.shape == low_whole.shape == (len(ELECTRODES), n // 4)
    # Polyphase filtering of a piece differs from the whole only by the filter's tails (one-second margin).
    assert np.abs(low_pieces[:, 64:-64].astype(int) - low_whole[:, 64:-64]).max() <= 1


def test_plots_stage_review_page(project: Path) -> None:
    params = load_params(project)
    page = write_eval_review(params, project)
    assert page == project / "plots" / "review_eval.html"
    meta = page_meta(page)
    tracks = read_tracks(project / "predictions" / "eval" / "tracks.npz")
    points = frozen_points(project / "models" / "operating_points.json", 7)
    expected = errors_first(params.eval.timeline_recordings, 16, 6.0)(tracks, points)
    assert [r["id"] for r in meta["recordings"]] == [t.recording_id for t in expected]
    # The references are the ones the eval stage scored.
    by_id = {t.recording_id: t for t in tracks}
    for rec in meta["recordings"]:
        assert [tuple(r) for r in rec["reference"]] == [tuple(r) for r in by_id[rec["id"]].reference]


def test_errors_first_order_and_caps() -> None:
    def track(rid, reference, high):
        probs = np.zeros(400, np.float32)
        for a, b in high:
            probs[a * 4:b * 4] = 1.0
        return ProbabilityTrack(rid, probs, 4.0, 100.0, reference)

    point = {"10": {"smoothing_s": 0.0, "threshold": 0.5, "hysteresis_low": None, "min_duration_s": 0.0,
                    "merge_gap_s": 0.0}}
    tracks = [track("a", [], []), track("b", [(10, 20)], [(10, 20)]), track("c", [], [(1, 2), (50, 60)]),
              track("d", [(10, 20)], [])]
    # timeline first (with seizures: b, then d), then errors (c: 2 false alarms) ; a has none.
    assert [t.recording_id for t in errors_first(1, 10, 10.0)(tracks, point)] == ["b", "c", "d"]
    assert [t.recording_id for t in errors_first(1, 2, 10.0)(tracks, point)] == ["b", "c"]
    assert [t.recording_id for t in errors_first(1, 10, 100.0 / 3600 * 2)(tracks, point)] == ["b", "c"]


def test_review_of_a_missing_file_fails_the_file_not_the_page(project: Path, tmp_path: Path) -> None:
    edf = min((project / "corpus" / "edf" / "eval").rglob("*.edf"))
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["review", str(edf), str(tmp_path / "nope.edf"), "--out", str(out),
                                 "--params-dir", str(project), "--checkpoint", str(project / "models" / "best.pt")])
    assert result.exit_code == 1
    assert "nope.edf: file not found" in result.stderr
    assert [r["id"] for r in page_meta(out)["recordings"]] == [edf.stem]


def test_review_of_an_edf_without_annotation(project: Path, tmp_path: Path) -> None:
    """One EDF with a checkpoint and no reference: no hit/miss columns, events still computed."""
    rng = np.random.default_rng(3)
    edf = write_edf_signals(tmp_path / "plain.edf", [EdfSignal(f"EEG {e}-REF", 250.0, -1000, 1000) for e in ELECTRODES],
                            [eeg_like(250 * 90, rng) for _ in ELECTRODES])
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["review", str(edf), "--out", str(out), "--params-dir", str(project),
                                 "--checkpoint", str(project / "models" / "best.pt")])
    assert result.exit_code == 0, result.output
    (rec,) = page_meta(out)["recordings"]
    assert rec["reference"] is None and set(rec["counts"]["10"]) == {"events"}


# ----------------------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Chromium (apt-get install -y chromium); the review page "
                    "tests need a real browser")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """The review page opened from its file, with every console message, page error and request."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.console, self.requests = [], []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.console.append(("pageerror", str(e))))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_function("window.szReview && window.szReview.ready")

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def view(self) -> tuple[float, float]:
        return tuple(self.js("[szReview.state.t0, szReview.state.t1]"))

    def open(self, rid: str) -> None:
        self.page.click(f'#recording-list tr[data-recording="{rid}"]')


@pytest.fixture()
def page(browser, project):
    opened = Page(browser, project / "review.html")
    yield opened
    opened.page.close()


def test_page_loads_without_console_errors_or_network(page) -> None:
    assert page.page.locator("#recording-list tbody tr").count() == 4
    assert page.js("document.querySelectorAll('#traces canvas').length") >= 1
    assert [m for m in page.console if m[0] in ("error", "pageerror", "warning")] == []
    assert page.requests == [page.url]


def test_operating_point_switch_gives_detects_events(page, project: Path) -> None:
    meta = page_meta(project / "review.html")
    tracks = {t.recording_id: t for t in read_tracks(project / "predictions" / "eval" / "tracks.npz")}
    for key, point in meta["points"].items():
        page.page.select_option("#point", key)
        from_detect = detect_events(project, key)
        for rec in meta["recordings"]:
            page.open(rec["id"])
            shown = page.js("szReview.events().filter(e => e.kind === 'false alarm' || e.kind === 'predicted hit')"
                            ".map(e => e.span)")
            # Times as detect writes them (the .csv_bi keeps 4 decimals) ...
            assert len(shown) == len(from_detect[rec["id"]]), (key, rec["id"])
            np.testing.assert_allclose(np.reshape(shown, (-1, 2)), np.reshape(from_detect[rec["id"]], (-1, 2)),
                                       atol=1e-4)
            # ... and bit for bit the floats of szflow.postprocess.
            track = tracks[rec["id"]]
            exact = probs_to_events(track.probabilities, track.frame_rate_hz, duration_s=track.duration_s,
                                    **{k: point[k] for k in SETTINGS_KEYS})
            assert [tuple(e) for e in shown] == exact
            row = page.page.locator(f'#recording-list tr[data-recording="{rec["id"]}"] td')
            counts = rec["counts"][key]
            assert row.all_inner_texts()[3:] == [str(counts[k]) for k in ("events", "hits", "misses", "false_alarms")]
    assert sum(len(v) for v in detect_events(project, "10").values()) != sum(
        len(v) for v in detect_events(project, "1").values())  # the points differ, so the check has teeth


def test_keyboard_moves_to_the_next_event_and_centres_on_it(page, project: Path) -> None:
    meta = page_meta(project / "review.html")
    rec = max(meta["recordings"], key=lambda r: r["counts"]["10"]["events"] + len(r["reference"]))
    page.page.select_option("#point", "10")
    page.open(rec["id"])
    events = page.js("szReview.events()")
    assert len(events) >= 2
    page.js("szReview.setView(-15, 15)")  # centre at 0: the first event is the next one
    page.page.locator("body").click(position={"x": 5, "y": 5})
    seen = []
    for _ in range(len(events)):
        length = page.view()[1] - page.view()[0]
        page.page.keyboard.press("n")
        t0, t1 = page.view()
        seen.append((t0 + t1) / 2)
        assert t1 - t0 == pytest.approx(length)
    centres = sorted({(e["span"][0] + e["span"][1]) / 2 for e in events})
    assert seen[:len(centres)] == pytest.approx(centres)
    page.page.keyboard.press("p")
    assert sum(page.view()) / 2 == pytest.approx(centres[-2])
    kinds = {e["kind"] for e in events}
    for key, kind in (("f", "false alarm"), ("m", "miss")):
        if kind in kinds:
            page.page.keyboard.press(key)
            centre = sum(page.view()) / 2
            assert any(e["kind"] == kind and (e["span"][0] + e["span"][1]) / 2 == pytest.approx(centre)
                       for e in events)


def test_every_kind_of_event_is_reachable(page, project: Path) -> None:
    """The project has hits, misses and false alarms (or the keyboard test above would test less)."""
    kinds = set()
    for rec in page_meta(project / "review.html")["recordings"]:
        for key in ("10", "1"):
            page.page.select_option("#point", key)
            page.open(rec["id"])
            kinds |= {e["kind"] for e in page.js("szReview.events()")}
    assert {"false alarm", "miss", "predicted hit"} <= kinds


def test_zoom_level_changes_decimation(page) -> None:
    page.page.locator("body").click(position={"x": 5, "y": 5})
    page.page.select_option("#page-length", "10")
    near = page.js("szReview.state.decimation")
    assert near["mode"] == "samples" and near["binSamples"] == 1 and near["rate"] == 256
    assert near["points"] == pytest.approx(10 * 256, abs=2)
    page.page.select_option("#page-length", "120")
    duration = page.js("szReview.state.rec.meta.duration")
    assert duration >= 120
    page.js(f"szReview.setView({duration / 2 - 60}, {duration / 2 + 60})")  # all of the view inside the recording
    far = page.js("szReview.state.decimation")
    assert far["mode"] == "min/max envelope" and far["binSamples"] > 1
    # Two to four points per pixel column, whatever the number of samples in view.
    assert 2 * far["width"] - 4 <= far["points"] <= 4 * far["width"] + 4 and far["samplesInView"] > 3 * far["width"]
    page.page.locator("body").click(position={"x": 5, "y": 5})  # keys go to the page, not the select
    page.page.keyboard.press("+")  # 120 s -> 60 s per page: half the samples per bin
    closer = page.js("szReview.state.decimation")
    assert page.view()[1] - page.view()[0] == 60
    assert closer["binSamples"] == far["binSamples"] // 2


def test_bipolar_view(page) -> None:
    page.page.select_option("#page-length", "10")
    referential = page.js("szReview.traceRows()")
    page.page.locator("body").click(position={"x": 5, "y": 5})
    page.page.keyboard.press("b")
    bipolar = page.js("szReview.traceRows()")
    assert referential["labels"] == list(ELECTRODES)
    assert bipolar["labels"] == [f"{a}-{b}" for a, b in DOUBLE_BANANA]
    # Each bipolar row is the difference of its two referential rows (same samples, same offsets).
    index = {name: i for i, name in enumerate(ELECTRODES)}
    ref_rows = np.array(referential["rows"])
    for r, (a, b) in enumerate(DOUBLE_BANANA):
        expected = (ref_rows[index[a]] + index[a]) - (ref_rows[index[b]] + index[b]) - r
        np.testing.assert_allclose(bipolar["rows"][r], expected, atol=1e-9)


def test_recording_list_sorts(page) -> None:
    page.page.click('#recording-list th[data-column="false_alarms"]')
    page.page.click('#recording-list th[data-column="false_alarms"]')  # descending
    values = [int(t) for t in page.page.locator("#recording-list tbody tr td:nth-child(7)").all_inner_texts()]
    assert values == sorted(values, reverse=True)


def test_review_of_a_predictions_folder(project: Path, tmp_path: Path) -> None:
    """`szflow review predictions/eval`: the eval stage's tracks, EDFs from params' data.root."""
    out = tmp_path / "split.html"
    result = runner.invoke(app, ["review", str(project / "predictions" / "eval"), "--out", str(out),
                                 "--params-dir", str(project), "--checkpoint", str(project / "models" / "best.pt")])
    assert result.exit_code == 0, result.output
    meta = page_meta(out)
    tracks = read_tracks(project / "predictions" / "eval" / "tracks.npz")
    assert [r["id"] for r in meta["recordings"]] == [t.recording_id for t in tracks]
    assert all(r["edf"].startswith(str(project / "corpus")) for r in meta["recordings"])


def test_full_rate_stretches_are_shown_where_they_cover_the_view(browser, tmp_path: Path) -> None:
    """A long recording: the whole at 32 Hz, 256 Hz around an event; the page draws the 256 Hz
    samples inside that stretch and the 32 Hz ones elsewhere (each sample as stored)."""
    rng = np.random.default_rng(0)
    duration, frames = 4000.0, 16000
    probs = np.zeros(frames, np.float32)
    probs[4 * 2000:4 * 2010] = 0.9
    track = ProbabilityTrack("long", probs, 4.0, duration, [])
    low = rng.integers(-60, 60, (len(ELECTRODES), int(duration * 32)), dtype=np.int8)
    high = rng.integers(-60, 60, (len(ELECTRODES), 256 * 70), dtype=np.int8)
    point = {"smoothing_s": 0.0, "threshold": 0.5, "hysteresis_low": None, "min_duration_s": 0.0, "merge_gap_s": 0.0}
    recording = ReviewRecording("long", "long.edf", duration, track, [(1990.0, 2030.0)], list(ELECTRODES), 0.1,
                                [TraceSegment(32.0, 0.0, low), TraceSegment(256.0, 1970.0, high)],
                                {"read": [], "reconstructed": [], "missing": [], "other_signals": []})
    path = write_review(tmp_path / "long.html", ReviewInputs([recording], {"10": point}, {
        "checkpoint": "x.pt", "step": 1, "epoch": 0, "params_hash": "h", "model_config": {}, "metrics": {},
        "operating_points": "p.json"}))
    page = Page(browser, path)
    try:
        assert [m for m in page.console if m[0] in ("error", "pageerror", "warning")] == []
        page.js("szReview.state.gain = 1")
        page.js("szReview.setView(2000, 2005)")
        inside = page.js("szReview.state.decimation")
        assert inside["rate"] == 256 and inside["segmentStart"] == 1970 and inside["mode"] == "samples"
        rows = np.array(page.js("szReview.traceRows()")["rows"])
        first = (2000 - 1970) * 256  # the sample at 2000 s; the view starts there
        np.testing.assert_allclose(rows[0][:100], high[0, first:first + 100] * 0.1, atol=1e-9)
        page.js("szReview.setView(100, 105)")
        outside = page.js("szReview.state.decimation")
        assert outside["rate"] == 32 and outside["segmentStart"] == 0
        rows = np.array(page.js("szReview.traceRows()")["rows"])
        np.testing.assert_allclose(rows[1][:10], low[1, 3200:3210] * 0.1 - 1, atol=1e-9)
        # A view that leaves the stretch falls back to the whole recording's rate.
        page.js("szReview.setView(2030, 2060)")
        assert page.js("szReview.state.decimation")["rate"] == 32
    finally:
        page.page.close()


def test_review_of_edfs_warns_as_detect_does(browser, project: Path, tmp_path: Path) -> None:
    """A model trained on synthetic EEG and an operating point dev did not certify: `szflow review`
    prints detect's warnings and the page shows them above everything; a pipeline split's page
    (the recordings the pipeline scored) gets only the uncertified point's."""
    params = load_params(project)
    model, _ = load_detector(project / "models" / "best.pt", expected_config=params.model, mamba_impl="torch",
                             device="cpu")
    models = tmp_path / "models"
    models.mkdir()
    save_checkpoint(models / "best.pt", model=model, model_config=params.model, step=7,
                    training_data={"source": "synthetic", "recordings": 12, "hours": 1.5})
    frozen = json.loads((project / "models" / "operating_points.json").read_text())
    tightest = min(frozen["detector"], key=float)
    frozen["detector"][tightest].update(certified=False, hours_scored=2.0, hours_needed=128.0)
    (models / "operating_points.json").write_text(json.dumps(frozen))
    edf = min((project / "corpus" / "edf" / "eval").rglob("*.edf"))
    result = runner.invoke(app, ["review", str(edf), "--out", str(tmp_path / "r.html"), "--params-dir", str(project),
                                 "--checkpoint", str(models / "best.pt")])
    assert result.exit_code == 0, result.output
    warnings = page_meta(tmp_path / "r.html")["provenance"]["warnings"]
    assert len(warnings) == 2 and "never seen real EEG" in warnings[0]
    assert f"operating point {tightest} FA/24h is not certified" in warnings[1]
    assert all(f"warning: {w}" in result.output for w in warnings)
    page = Page(browser, tmp_path / "r.html")
    try:
        assert page.js("[...document.querySelectorAll('#warnings .warning')].map(p => p.textContent)") == warnings
    finally:
        page.page.close()
    split = review_split(project / "predictions" / "eval", project / "corpus", params, checkpoint=models / "best.pt",
                         operating_points=models / "operating_points.json", tracks_name="tracks.npz")
    assert split.provenance["warnings"] == warnings[1:]
    # Certified points and a model trained on real data: nothing to warn about.
    (models / "operating_points.json").write_text((project / "models" / "operating_points.json").read_text())
    save_checkpoint(models / "best.pt", model=model, model_config=params.model, step=7,
                    training_data={"source": "tusz", "recordings": 12, "hours": 1.5})
    result = runner.invoke(app, ["review", str(edf), "--out", str(tmp_path / "r.html"), "--params-dir", str(project),
                                 "--checkpoint", str(models / "best.pt")])
    assert result.exit_code == 0 and "warning:" not in result.output
    assert page_meta(tmp_path / "r.html")["provenance"]["warnings"] == []
