"""Corpus discovery (TUSZ and BIDS trees) and `szflow corpus summary` on trees with broken files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from szflow.cli import app
from szflow.config import ELECTRODES, load_params
from szflow.data.annotations import Annotation, Event, write_csv, write_csv_bi, write_events_tsv
from szflow.data.discover import COLUMNS, discover_corpus
from szflow.data.summary import format_summary, scan_edf_header, summarise_corpus
from szflow.errors import EdfError, InputFileError
from szflow.scoring.intervals import hours_to_certify
from szflow.synth.writer import EdfSignal, write_edf_signals

LABELS = {"01_tcp_ar": "REF", "02_tcp_le": "LE", "03_tcp_ar_a": "REF"}


def write_edf(path: Path, seconds: int, rate: int = 250, suffix: str = "REF") -> int:
    """A tiny TUSZ-like EDF: 3 EEG channels plus a 1 Hz channel. Returns its header length in bytes."""
    labels = [f"EEG FP1-{suffix}", f"EEG FP2-{suffix}", f"EEG C3-{suffix}"]
    signals = [EdfSignal(label, rate, -200.0, 200.0) for label in labels] + [EdfSignal("IBI", 1, -200.0, 200.0)]
    rng = np.random.default_rng(0)
    write_edf_signals(path, signals, [rng.normal(0, 20, seconds * rate) for _ in labels] + [np.zeros(seconds)])
    return int(path.read_bytes()[184:192])


def tusz_recording(root: Path, split: str, patient: str, session: str, year: int, montage: str, take: int,
                   seconds: int = 12, rate: int = 250, seizures: list[Event] | None = None,
                   annotation_duration: float | None = None, edf: str = "ok", annotation: bool = True) -> Path:
    """One TUSZ recording; `edf` is ok / absent / header_only / half."""
    folder = root / "edf" / split / patient / f"{session}_{year}" / montage
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{patient}_{session}_t{take:03d}"
    if edf != "absent":
        header_bytes = write_edf(folder / f"{stem}.edf", seconds, rate, LABELS[montage])
        if edf in ("header_only", "half"):
            size = (folder / f"{stem}.edf").stat().st_size
            keep = header_bytes if edf == "header_only" else header_bytes + (size - header_bytes) // 2
            os.truncate(folder / f"{stem}.edf", keep)
    if annotation:
        ann = Annotation(stem, annotation_duration or float(seconds), seizures or [])
        write_csv_bi(folder / f"{stem}.csv_bi", ann)
        write_csv(folder / f"{stem}.csv", ann)
    return folder / stem


@pytest.fixture(scope="module")
def tusz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tusz")
    tusz_recording(root, "train", "aaaaaaaa", "s001", 2002, "01_tcp_ar", 0,
                   seizures=[Event(2.0, 5.0, "fnsz", "FP1-F7"), Event(4.0, 6.0, "fnsz", "F7-T3")])
    tusz_recording(root, "train", "aaaaaaaa", "s001", 2002, "01_tcp_ar", 1, rate=256)
    tusz_recording(root, "train", "aaaaaaab", "s002", 2003, "02_tcp_le", 0, edf="absent",
                   annotation_duration=3600.0, seizures=[Event(100.0, 160.0)])
    tusz_recording(root, "dev", "aaaaaaac", "s001", 2004, "03_tcp_ar_a", 0, edf="header_only",
                   seizures=[Event(1.0, 2.0), Event(8.0, 9.0)])
    tusz_recording(root, "dev", "aaaaaaac", "s001", 2004, "03_tcp_ar_a", 1, annotation_duration=600.0,
                   seizures=[Event(300.0, 330.0, "gnsz")])
    tusz_recording(root, "dev", "aaaaaaac", "s001", 2004, "03_tcp_ar_a", 2, edf="half")
    tusz_recording(root, "eval", "aaaaaaad", "s001", 2005, "01_tcp_ar", 0, annotation=False)
    tusz_recording(root, "eval", "aaaaaaad", "s001", 2005, "01_tcp_ar", 1, annotation_duration=5.0)
    broken = tusz_recording(root, "eval", "aaaaaaae", "s003", 2006, "01_tcp_ar", 0)
    broken.with_suffix(".csv_bi").write_text("# duration = 12.00 secs\nTERM,1,2,oops,1\n")
    return root


def test_discovers_tusz_tree(tusz_root: Path) -> None:
    table = discover_corpus(tusz_root)
    assert list(table.columns) == COLUMNS
    assert list(zip(table["split"], table["recording_id"], strict=True)) == [
        ("dev", "aaaaaaac_s001_t000"), ("dev", "aaaaaaac_s001_t001"), ("dev", "aaaaaaac_s001_t002"),
        ("eval", "aaaaaaad_s001_t000"), ("eval", "aaaaaaad_s001_t001"), ("eval", "aaaaaaae_s003_t000"),
        ("train", "aaaaaaaa_s001_t000"), ("train", "aaaaaaaa_s001_t001"), ("train", "aaaaaaab_s002_t000"),
    ]
    first = table.iloc[0].to_dict()
    folder = tusz_root / "edf" / "dev" / "aaaaaaac" / "s001_2004" / "03_tcp_ar_a"
    assert first == {
        "recording_id": "aaaaaaac_s001_t000", "split": "dev", "patient": "aaaaaaac", "session": "s001",
        "montage": "03_tcp_ar_a", "edf_path": str(folder / "aaaaaaac_s001_t000.edf"),
        "annotation_path": str(folder / "aaaaaaac_s001_t000.csv_bi"),
        "types_path": str(folder / "aaaaaaac_s001_t000.csv"), "format": "tusz",
    }
    absent = table[table["recording_id"] == "aaaaaaab_s002_t000"].iloc[0]
    assert absent["edf_path"].endswith("02_tcp_le/aaaaaaab_s002_t000.edf")
    assert not Path(absent["edf_path"]).exists()
    unannotated = table[table["recording_id"] == "aaaaaaad_s001_t000"].iloc[0]
    assert unannotated["annotation_path"] is None and unannotated["types_path"] is None


def test_root_may_be_the_folder_holding_the_splits(tusz_root: Path) -> None:
    via_corpus = discover_corpus(tusz_root)
    via_edf = discover_corpus(tusz_root / "edf", source="tusz")
    assert via_edf.equals(via_corpus)
    assert discover_corpus(tusz_root, source="synthetic").equals(via_corpus)


def test_nothing_recognisable_is_input_file_error(tmp_path: Path, tusz_root: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match="no TUSZ .* or BIDS .* recordings found") as info:
        discover_corpus(tmp_path)
    assert info.value.path == str(tmp_path)
    with pytest.raises(InputFileError):
        discover_corpus(tusz_root, source="bids")
    with pytest.raises(InputFileError, match="does not exist"):
        discover_corpus(tmp_path / "missing")


def bids_recording(root: Path, sub: str, ses: str, run: int, edf: bool = True, events: bool = True) -> None:
    folder = root / f"sub-{sub}" / f"ses-{ses}" / "eeg"
    stem = f"sub-{sub}_ses-{ses}_task-szMonitoring_run-{run:02d}"
    if edf:
        write_edf(folder / f"{stem}_eeg.edf", 10, rate=256, suffix="Avg")
    if events:
        write_events_tsv(folder / f"{stem}_events.tsv", Annotation(stem, 10.0, [Event(2.0, 4.0, "sz")]))


def test_discovers_bids_tree_without_splits(tmp_path: Path) -> None:
    bids_recording(tmp_path, "02", "01", 0)
    bids_recording(tmp_path, "01", "01", 1, events=False)
    bids_recording(tmp_path, "01", "02", 0, edf=False)
    (tmp_path / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    table = discover_corpus(tmp_path)
    assert list(table["recording_id"]) == ["sub-01_ses-01_task-szMonitoring_run-01",
                                           "sub-01_ses-02_task-szMonitoring_run-00",
                                           "sub-02_ses-01_task-szMonitoring_run-00"]
    assert set(table["split"]) == {"eval"} and set(table["format"]) == {"bids"}
    assert set(table["montage"]) == {"bids"}
    assert list(table["patient"]) == ["sub-01", "sub-01", "sub-02"]
    assert list(table["session"]) == ["ses-01", "ses-02", "ses-01"]
    assert table.iloc[0]["annotation_path"] is None
    assert table.iloc[1]["edf_path"].endswith("sub-01_ses-02_task-szMonitoring_run-00_eeg.edf")
    assert table.iloc[2]["annotation_path"].endswith("_run-00_events.tsv")
    assert table["types_path"].isna().all()


def test_discovers_bids_tree_with_splits(tmp_path: Path) -> None:
    bids_recording(tmp_path / "train", "01", "01", 0)
    bids_recording(tmp_path / "dev", "02", "01", 0)
    bids_recording(tmp_path / "eval", "03", "01", 0)
    table = discover_corpus(tmp_path)
    assert list(table["split"]) == ["dev", "eval", "train"]
    assert list(table["patient"]) == ["sub-02", "sub-03", "sub-01"]
    summary = summarise_corpus(tmp_path)
    assert summary["format"] == "bids"
    assert list(summary["splits"]) == ["train", "dev", "eval"]
    assert summary["splits"]["train"]["sample_rates"] == {"256": 1}
    assert summary["splits"]["train"]["seizures"] == 1


def test_edf_header_scan_reads_no_data(tusz_root: Path) -> None:
    path = next((tusz_root / "edf" / "train").rglob("aaaaaaaa_s001_t001.edf"))
    header = scan_edf_header(path)
    assert header.n_records == 12 and header.record_duration_s == 1.0
    assert header.eeg_sample_rate() == 256.0
    assert header.records_held == 12
    bad = path.with_name("bad.edf")
    bad.write_bytes(b"0       " + b"x" * 300)
    with pytest.raises(EdfError, match="bad EDF header"):
        scan_edf_header(bad)
    bad.write_bytes(b"0" * 100)
    with pytest.raises(EdfError, match="truncated inside its header"):
        scan_edf_header(bad)
    bad.unlink()


def test_summary_lists_broken_files_and_still_counts_their_annotations(tusz_root: Path) -> None:
    result = CliRunner().invoke(app, ["corpus", "summary", str(tusz_root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["root"] == str(tusz_root) and summary["format"] == "tusz"
    assert list(summary["splits"]) == ["train", "dev", "eval"]

    train = summary["splits"]["train"]
    assert (train["patients"], train["recordings"], train["seizures"]) == (2, 3, 2)
    assert train["hours"] == pytest.approx((12 + 12 + 3600) / 3600)
    assert train["seizure_hours"] == pytest.approx((4 + 60) / 3600)
    assert train["montages"] == {"01_tcp_ar": 2, "02_tcp_le": 1}
    assert train["sample_rates"] == {"250": 1, "256": 1}
    assert [(f["recording_id"], f["reason"]) for f in train["failed"]] == [("aaaaaaab_s002_t000", "EDF missing")]

    dev = summary["splits"]["dev"]
    assert (dev["patients"], dev["recordings"], dev["seizures"]) == (1, 3, 3)
    assert dev["hours"] == pytest.approx((12 + 600 + 12) / 3600)
    assert dev["sample_rates"] == {"250": 3}
    reasons = {f["recording_id"]: f["reason"] for f in dev["failed"]}
    assert reasons == {
        "aaaaaaac_s001_t000": "EDF truncated: header says 12 s, file holds 0 s",
        "aaaaaaac_s001_t001": "EDF shorter than annotation: 12.0 s vs 600.0 s",
        "aaaaaaac_s001_t002": "EDF truncated: header says 12 s, file holds 6 s",
    }
    assert all(f["path"].endswith(".edf") for f in dev["failed"])

    evaluation = summary["splits"]["eval"]
    assert (evaluation["patients"], evaluation["recordings"]) == (2, 3)
    assert evaluation["hours"] == pytest.approx(5 / 3600)
    failed = {f["recording_id"]: f for f in evaluation["failed"]}
    assert failed["aaaaaaad_s001_t001"]["reason"] == "EDF longer than annotation: 12.0 s vs 5.0 s"
    assert failed["aaaaaaad_s001_t000"]["reason"] == "annotation missing"
    assert failed["aaaaaaae_s003_t000"]["path"].endswith(".csv_bi")
    assert "line 2: unknown label 'oops'" in failed["aaaaaaae_s003_t000"]["reason"]


def test_summary_text_table(tusz_root: Path) -> None:
    result = CliRunner().invoke(app, ["corpus", "summary", str(tusz_root)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "split" in text and "train" in text and "01_tcp_ar:2" in text
    assert "failed files (7):" in text
    assert "EDF shorter than annotation: 12.0 s vs 600.0 s" in text
    assert text.startswith(format_summary(summarise_corpus(tusz_root)) + "\n\nhours to certify")


def test_summary_counts_the_hours_a_target_needs_with_the_between_split_dispersion(tusz_root: Path,
                                                                                   tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    dispersion = load_params(root).eval.between_split_dispersion

    def needed(*options: str) -> float:
        result = CliRunner().invoke(app, ["corpus", "summary", str(tusz_root), "--json", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["certification"]["dev"]["10"]["hours_needed"]

    assert needed("--params-dir", str(root)) == pytest.approx(hours_to_certify(10.0, dispersion=dispersion))
    assert needed("--params-dir", str(tmp_path)) == pytest.approx(hours_to_certify(10.0))
    assert needed("--between-split-dispersion", "3") == pytest.approx(3 * hours_to_certify(10.0))
    refused = CliRunner().invoke(app, ["corpus", "summary", str(tusz_root), "--between-split-dispersion", "0.5"])
    assert refused.exit_code == 2


def test_summary_of_unrecognisable_root_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["corpus", "summary", str(tmp_path)])
    assert result.exit_code == 2
    assert "no TUSZ" in result.output


CHB_MIT = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4",
           "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8",
           "T8-P8"]


def test_summary_reports_each_recordings_electrodes_and_segments(tmp_path: Path, write_edf_plus_d) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "edf" / "train" / "aaaaaaaa" / "s001_2002" / "01_tcp_ar"
    folder.mkdir(parents=True)
    montages = {"t000": [f"EEG {n}-REF" for n in ELECTRODES], "t001": CHB_MIT,
                "t002": [n.title().replace("T3", "T7").ljust(4, ".") for n in ELECTRODES]}
    for take, labels in montages.items():
        write_edf_signals(folder / f"aaaaaaaa_s001_{take}.edf", [EdfSignal(lb, 64, -200.0, 200.0) for lb in labels],
                          [rng.normal(0, 20, 12 * 64) for _ in labels])
    write_edf_plus_d(folder / "aaaaaaaa_s001_t003.edf", [*range(6), *range(10, 16)], rate=64)
    for take, duration in {"t000": 12.0, "t001": 12.0, "t002": 12.0, "t003": 16.0}.items():
        write_csv_bi(folder / f"aaaaaaaa_s001_{take}.csv_bi", Annotation(f"aaaaaaaa_s001_{take}", duration, []))
    summary = summarise_corpus(tmp_path)
    train = summary["splits"]["train"]
    assert train["failed"] == []  # the EDF+D file's annotation covers its file time, gap included
    assert train["electrodes"] == {"direct": 3, "missing": 1}
    reports = {r["recording_id"]: r for r in train["electrode_reports"]}
    assert reports["aaaaaaaa_s001_t001"]["missing"] == ["FZ", "CZ", "PZ"]
    assert reports["aaaaaaaa_s001_t001"]["direct"] == [] and len(reports["aaaaaaaa_s001_t001"]["derived"]) == 16
    assert reports["aaaaaaaa_s001_t002"]["direct"] == list(ELECTRODES)  # `Fp1.`, `T7..`: 10-10 and padded
    assert reports["aaaaaaaa_s001_t003"]["segments"] == 2
    text = format_summary(summary)
    assert "direct:3 missing:1" in text
    assert "recordings with reconstructed or missing electrodes, or gaps (2):" in text
    assert "aaaaaaaa_s001_t001  0 direct; derived FP1 FP2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T3 T4 T5 T6; missing FZ CZ PZ" in text
    assert "aaaaaaaa_s001_t003  19 direct; 2 segments (EDF+D)" in text
