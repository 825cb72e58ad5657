"""TUSZ .csv_bi / .csv and SzCORE _events.tsv: exact formats, round trips, real-world quirks."""

from __future__ import annotations

from pathlib import Path

import pytest

from szflow.data import (
    SEIZURE_LABELS,
    Annotation,
    Event,
    read_annotation,
    read_csv,
    read_csv_bi,
    read_events_tsv,
    write_csv,
    write_csv_bi,
    write_events_tsv,
)
from szflow.errors import AnnotationError, InputFileError

TUSZ_CSV_BI = (
    "# version = csv_v1.0.0\n"
    "# bname = aaaaaaac_s001_t000\n"
    "# duration = 301.00 secs\n"
    "# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt\n"
    "#\n"
    "channel,start_time,stop_time,label,confidence\n"
    "TERM,0.0000,36.8868,bckg,1.0000\n"
    "TERM,36.8868,183.3055,seiz,1.0000\n"
    "TERM,183.3055,301.0000,bckg,1.0000\n"
)

TUSZ_CSV = (
    "# version = csv_v1.0.0\n"
    "# bname = aaaaaaac_s001_t000\n"
    "# duration = 301.00 secs\n"
    "# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt\n"
    "#\n"
    "channel,start_time,stop_time,label,confidence\n"
    "FP1-F7,0.0000,36.8868,bckg,1.0000\n"
    "FP1-F7,36.8868,183.3055,cpsz,1.0000\n"
    "FP1-F7,183.3055,301.0000,bckg,1.0000\n"
    "F7-T3,0.0000,40.0000,bckg,1.0000\n"
    "F7-T3,40.0000,190.5000,cpsz,1.0000\n"
    "F7-T3,190.5000,301.0000,bckg,1.0000\n"
)


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def test_reads_real_tusz_csv_bi(tmp_path: Path) -> None:
    ann = read_csv_bi(_write(tmp_path / "aaaaaaac_s001_t000.csv_bi", TUSZ_CSV_BI))
    assert ann.bname == "aaaaaaac_s001_t000"
    assert ann.duration_s == 301.0
    assert ann.version == "csv_v1.0.0"
    assert ann.montage_file == "$NEDC_NFC/lib/nedc_eas_default_montage.txt"
    assert ann.events == [Event(36.8868, 183.3055, "seiz", "TERM", 1.0)]
    assert ann.seizure_intervals() == [(36.8868, 183.3055)]
    assert ann.seizure_types() == ["seiz"]


def test_write_csv_bi_reproduces_tusz_bytes(tmp_path: Path) -> None:
    source = _write(tmp_path / "a.csv_bi", TUSZ_CSV_BI)
    out = tmp_path / "b.csv_bi"
    write_csv_bi(out, read_csv_bi(source))
    assert out.read_text() == TUSZ_CSV_BI


def test_write_csv_reproduces_tusz_bytes(tmp_path: Path) -> None:
    source = _write(tmp_path / "a.csv", TUSZ_CSV)
    ann = read_csv(source)
    assert ann.seizure_intervals() == [(36.8868, 190.5)]
    assert ann.seizure_types() == ["cpsz"]
    out = tmp_path / "b.csv"
    write_csv(out, ann)
    assert out.read_text() == TUSZ_CSV


def test_csv_bi_written_from_code_fills_background(tmp_path: Path) -> None:
    ann = Annotation("rec", 60.0, [Event(10.0, 20.0), Event(20.0, 30.0, confidence=0.5), Event(50.0, 60.0)])
    path = tmp_path / "rec.csv_bi"
    write_csv_bi(path, ann)
    body = path.read_text().splitlines()[6:]
    assert body == [
        "TERM,0.0000,10.0000,bckg,1.0000",
        "TERM,10.0000,20.0000,seiz,1.0000",
        "TERM,20.0000,30.0000,seiz,0.5000",
        "TERM,30.0000,50.0000,bckg,1.0000",
        "TERM,50.0000,60.0000,seiz,1.0000",
    ]
    assert read_csv_bi(path) == ann
    # Touching events stay separate events but one seizure interval.
    assert ann.seizure_intervals() == [(10.0, 30.0), (50.0, 60.0)]


def test_csv_bi_of_per_channel_events_merges_overlaps(tmp_path: Path) -> None:
    ann = Annotation("rec", 100.0, [Event(10, 30, "fnsz", "FP1-F7", 0.7), Event(20, 40, "gnsz", "C3-P3", 0.9)])
    path = tmp_path / "rec.csv_bi"
    write_csv_bi(path, ann)
    assert read_csv_bi(path).events == [Event(10.0, 40.0, "seiz", "TERM", 0.9)]


def test_no_seizure_recording_is_one_background_row(tmp_path: Path) -> None:
    ann = Annotation("quiet", 12.5, [])
    for writer, name in ((write_csv_bi, "q.csv_bi"), (write_csv, "q.csv")):
        writer(tmp_path / name, ann)
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[2] == "# duration = 12.50 secs"
        assert lines[6:] == ["TERM,0.0000,12.5000,bckg,1.0000"]
        assert read_annotation(tmp_path / name) == ann


def test_duration_keeps_digits_that_two_decimals_would_lose(tmp_path: Path) -> None:
    ann = Annotation("r", 300.1234, [Event(1.0, 300.1234)])
    write_csv_bi(tmp_path / "r.csv_bi", ann)
    assert "# duration = 300.1234 secs" in (tmp_path / "r.csv_bi").read_text()
    assert read_csv_bi(tmp_path / "r.csv_bi") == ann


def test_reads_seizure_only_file_and_quirks(tmp_path: Path) -> None:
    text = (
        "\ufeff# bname = odd\r\n"
        "# some tool wrote this comment\r\n"
        "# duration = 100 secs   \r\n"
        "\r\n"
        "# version = csv_v1.0.0\r\n"
        "channel, start_time, stop_time, label, confidence \r\n"
        "TERM,5.5,9.25,SEIZ,1.0,\r\n"
        "   \r\n"
    )
    ann = read_csv_bi(_write(tmp_path / "odd.csv_bi", text))
    assert ann.bname == "odd"
    assert ann.duration_s == 100.0
    assert ann.events == [Event(5.5, 9.25, "seiz", "TERM", 1.0)]


def test_reads_rows_without_column_header_or_confidence(tmp_path: Path) -> None:
    no_header = "# duration = 10.00 secs\nTERM,1.0,2.0,seiz,0.25\n"
    assert read_csv_bi(_write(tmp_path / "a.csv_bi", no_header)).events == [Event(1.0, 2.0, "seiz", "TERM", 0.25)]
    no_confidence = "# duration = 10.00 secs\nchannel,start_time,stop_time,label\nTERM,1,2,seiz\n"
    assert read_csv_bi(_write(tmp_path / "b.csv_bi", no_confidence)).events == [Event(1.0, 2.0)]


def test_missing_bname_falls_back_to_file_stem(tmp_path: Path) -> None:
    ann = read_csv_bi(_write(tmp_path / "xyz_s001_t002.csv_bi", "# duration = 10.00 secs\n"))
    assert ann.bname == "xyz_s001_t002"
    assert ann.events == []


BAD_FILES = [
    (b"", "empty"),
    (b"channel,start_time,stop_time,label,confidence\nTERM,0,1,seiz,1\n", "duration"),
    (b"# duration = abc secs\n", "line 1: duration"),
    (b"# duration = 10 secs\nchannel,start_time,stop_time,label,confidence\nTERM,5,4,seiz,1\n",
     "line 3: stop time 4.0 is before start time 5.0"),
    (b"# duration = 10 secs\nchannel,start_time,stop_time,label,confidence\nTERM,x,4,seiz,1\n",
     "line 3: start_time 'x' is not a number"),
    (b"# duration = 10 secs\nchannel,start_time,stop_time,label,confidence\nTERM,1,nan,seiz,1\n",
     "line 3: stop_time 'nan' is not a finite number"),
    (b"# duration = 10 secs\n\nchannel,start_time,stop_time,label,confidence\nTERM,1,4,artf,1\n",
     "line 4: unknown label 'artf'"),
    (b"# duration = 10 secs\nTERM,1,4,seiz\n", "line 2: expected 5"),
    (b"# duration = 10 secs\nTERM,-1,4,seiz,1\n", "negative"),
    (b"# duration = 10 secs\nTERM,1,40,seiz,1\n", "after the duration"),
    (b"# duration = 10 secs\n,1,4,seiz,1\n", "empty channel"),
    (b"# duration = 10 secs\nchannel,begin,end\nTERM,1,4\n", "column header lacks"),
    (b"\xff\xfe# duration\n", "not UTF-8"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_malformed_tusz_files_raise_annotation_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = _write(tmp_path / "bad.csv_bi", content)
    with pytest.raises(AnnotationError) as info:
        read_csv_bi(path)
    assert info.value.path == str(path)
    assert message in info.value.reason
    assert str(path) in str(info.value)


def test_missing_file_is_annotation_error(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="cannot read"):
        read_csv_bi(tmp_path / "nope.csv_bi")


def test_seizure_labels_and_types() -> None:
    assert SEIZURE_LABELS == {"seiz", "fnsz", "gnsz", "spsz", "cpsz", "absz", "tnsz", "cnsz", "tcsz",
                              "atsz", "mysz"}
    ann = Annotation("r", 100, [Event(50, 60, "tcsz", "C3-P3"), Event(1, 5, "fnsz", "FP1-F7"),
                                Event(3, 8, "fnsz", "F7-T3"), Event(8, 9, "absz", "T3-T5"),
                                Event(70, 80, "bckg")])
    assert ann.seizure_intervals() == [(1, 9), (50, 60)]
    assert ann.seizure_types() == ["absz", "fnsz", "tcsz"]
    assert Event(0, 2, "sz_foc_ia").is_seizure and not Event(0, 2, "bckg").is_seizure
    assert Event(1.5, 4.0).duration == 2.5


def test_write_refuses_events_a_reader_would_reject(tmp_path: Path) -> None:
    for event in (Event(5, 4), Event(1, 50), Event(1, 2, "artf"), Event(1, 2, channel="A,B")):
        with pytest.raises(AnnotationError):
            write_csv(tmp_path / "x.csv", Annotation("x", 10, [event]))
    assert not (tmp_path / "x.csv").exists()


# --- SzCORE BIDS -------------------------------------------------------------------------------

SZCORE_TSV = (
    "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"
    "36.8868\t146.4187\tsz\tn/a\tn/a\t2000-01-01 00:00:00\t301.0000\n"
    "200.0000\t10.5000\tsz_foc_ia\t0.8000\tFp1,F7\t2000-01-01 00:00:00\t301.0000\n"
)


def test_events_tsv_round_trip(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub-01_ses-01_task-szMonitoring_run-00_events.tsv", SZCORE_TSV)
    ann = read_events_tsv(path)
    assert ann.bname == "sub-01_ses-01_task-szMonitoring_run-00"
    assert ann.duration_s == 301.0
    assert ann.events == [Event(36.8868, 183.3055, "sz", "TERM", 1.0),
                          Event(200.0, 210.5, "sz_foc_ia", "Fp1,F7", 0.8)]
    out = tmp_path / "out_events.tsv"
    write_events_tsv(out, ann)
    assert out.read_text() == SZCORE_TSV
    assert read_annotation(out).events == ann.events


def test_events_tsv_background_only_and_tusz_labels(tmp_path: Path) -> None:
    out = tmp_path / "r_events.tsv"
    write_events_tsv(out, Annotation("r", 60.0, []), date_time="2024-05-01 10:00:00")
    assert out.read_text().splitlines()[1] == "0.0000\t60.0000\tbckg\tn/a\tn/a\t2024-05-01 10:00:00\t60.0000"
    assert read_events_tsv(out) == Annotation("r", 60.0, [])
    write_events_tsv(out, Annotation("r", 60.0, [Event(1, 2, "seiz"), Event(3, 4, "cpsz")]))
    assert [e.label for e in read_events_tsv(out).events] == ["sz", "sz_foc_ia"]
    # ... and back to TUSZ types for a .csv.
    write_csv(tmp_path / "r.csv", read_events_tsv(out))
    assert read_csv(tmp_path / "r.csv").seizure_types() == ["cpsz", "seiz"]


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty"),
    ("onset\tduration\teventType\n0\t1\tsz\n", "lacks recordingDuration"),
    ("onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n", "no event rows"),
    ("onset\tduration\teventType\trecordingDuration\n0\t1\tartifact\t10\n", "line 2: unknown eventType"),
    ("onset\tduration\teventType\trecordingDuration\n0\t1\tsz\n", "line 2: expected 4"),
    ("onset\tduration\teventType\trecordingDuration\n0\tx\tsz\t10\n", "line 2: duration 'x'"),
    ("onset\tduration\teventType\trecordingDuration\n0\t1\tsz\t10\n2\t1\tsz\t20\n", "line 3: recordingDuration"),
])
def test_malformed_tsv(tmp_path: Path, content: str, message: str) -> None:
    path = _write(tmp_path / "x_events.tsv", content)
    with pytest.raises(AnnotationError, match=message):
        read_events_tsv(path)


def test_read_annotation_dispatch(tmp_path: Path) -> None:
    assert read_annotation(_write(tmp_path / "a.csv_bi", TUSZ_CSV_BI)).seizure_types() == ["seiz"]
    assert read_annotation(_write(tmp_path / "a.csv", TUSZ_CSV)).seizure_types() == ["cpsz"]
    assert read_annotation(_write(tmp_path / "a_events.tsv", SZCORE_TSV)).seizure_types() == ["sz", "sz_foc_ia"]
    with pytest.raises(InputFileError, match="unknown annotation format"):
        read_annotation(_write(tmp_path / "a.txt", "x"))
