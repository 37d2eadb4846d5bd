"""Kinetics-400/600/700 as distributed: CSV parsing, clip folders, missing clips, and every bad row named."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_layouts import KINETICS_CLASSES, kinetics_clip, train_then_test, write_kinetics_layout

from offnet.cli import main
from offnet.data.check import check_dataset, validate_records
from offnet.data.datasets import load_split
from offnet.data.kinetics import load_kinetics


@pytest.fixture
def kinetics(tmp_path: Path) -> Path:
    return write_kinetics_layout(tmp_path / "k400", missing=1, broken=1)


def test_train_and_validation_records(kinetics: Path) -> None:
    train = load_split("kinetics", kinetics, subset="train")
    assert train.class_names == sorted(KINETICS_CLASSES)
    assert [(r.path, r.label, r.source) for r in train.records[:2]] == [
        (kinetics_clip(kinetics, "train", "air drumming", "tr-0_0XYZab", 0), 0, "train.csv:2"),
        (kinetics_clip(kinetics, "train", "air drumming", "tr-0_1XYZab", 10), 0, "train.csv:3"),
    ]
    # an underscore folder and clips straight in the split folder are found too
    assert train.records[2].path == kinetics / "train" / "playing_cards" / "tr-1_0XYZab_000000_000010.mp4"
    assert train.records[4].path == kinetics / "train" / "tr-2_0XYZab_000000_000010.mp4"
    assert train.base == kinetics / "train"
    test = load_split("kinetics", kinetics, subset="test")
    assert [r.label for r in test.records] == [0, 1, 2] and test.class_names == train.class_names
    assert test.records[0].path == kinetics / "val" / "air drumming" / "va-0_0XYZab_000030_000040.mp4"
    assert test.records[0].source == "validate.csv:2"


def test_annotations_folder_and_frames_root(tmp_path: Path, kinetics: Path) -> None:
    (kinetics / "annotations").mkdir()
    for name in ("train.csv", "validate.csv"):
        (kinetics / name).rename(kinetics / "annotations" / ("val.csv" if name == "validate.csv" else name))
    frames = tmp_path / "frames"
    frames.mkdir()
    data = load_kinetics(kinetics, subset="test", frames_root=frames)
    assert data.records[0].path == frames / "air drumming" / "va-0_0XYZab_000030_000040"
    assert data.base == frames and data.records[0].source == "val.csv:2"


def test_missing_clips_are_listed_at_their_documented_path(kinetics: Path) -> None:
    records = load_split("kinetics", kinetics, subset="train").records
    assert records[0].path == kinetics_clip(kinetics, "train", "air drumming", "tr-0_0XYZab", 0)
    assert not records[0].path.exists()
    good, bad = validate_records(records, on_bad_video="skip", workers=1)
    assert [(b.kind, b.record.source) for b in bad] == [("missing", "train.csv:2"), ("unreadable", "train.csv:3")]
    assert len(good) == 4 and all(r.num_frames == 12 for r in good)
    with pytest.raises(ValueError, match="2 of 6 videos cannot be used"):
        validate_records(records, on_bad_video="fail", workers=1)


def test_data_check_names_every_missing_or_broken_clip(kinetics: Path, capsys) -> None:
    report = check_dataset("kinetics", kinetics, workers=1)
    assert report.usable == 7 and len(report.bad) == 2
    args = ["data", "check", "--dataset", "kinetics", "--root", str(kinetics), "--workers", "1"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "2 bad video(s) (1 missing, 1 unreadable):" in out
    assert f"missing: {kinetics / 'train' / 'air drumming' / 'tr-0_0XYZab_000000_000010.mp4'} [train.csv:2]" in out
    assert f"unreadable: {kinetics / 'train' / 'air drumming' / 'tr-0_1XYZab_000010_000020.mp4'} [train.csv:3]" in out
    assert "train: 6 listed, 4 usable, 2 bad" in out and "test: 3 listed, 3 usable, 0 bad" in out
    assert main([*args, "--on-bad-video", "skip"]) == 0
    assert "OK: 7 usable video(s) (2 bad video(s) will be skipped)" in capsys.readouterr().out


def test_complete_fixture_passes_data_check(tmp_path: Path, capsys) -> None:
    root = write_kinetics_layout(tmp_path / "k", per_class=1)
    assert main(["data", "check", "--dataset", "kinetics", "--root", str(root), "--workers", "1"]) == 0
    assert "OK: 6 usable video(s)" in capsys.readouterr().out


HEADER = "label,youtube_id,time_start,time_end,split\n"


@pytest.mark.parametrize("rows, line, message", [
    ("walk,abcdefghijk,0,10,train\nrun,abc/../../x,0,10,train\n", 3, "youtube_id 'abc/../../x' is not a YouTube id"),
    ("../up,abcdefghijk,0,10,train\n", 2, "label '../up' is empty or not a folder name"),
    ("walk,abcdefghijk,zero,10,train\n", 2, "time_start/time_end must be whole seconds"),
    ("walk,abcdefghijk,0.5,10,train\n", 2, "time_start/time_end must be whole seconds"),
    ("walk,abcdefghijk,10,10,train\n", 2, "time_start < time_end"),
    ("walk,abcdefghijk,0,10\n", 2, "4 fields, the header has 5"),
])
def test_bad_training_rows_name_file_and_line(tmp_path: Path, rows: str, line: int, message: str) -> None:
    (tmp_path / "train.csv").write_text(HEADER + rows)
    with pytest.raises(ValueError, match=message) as info:
        load_split("kinetics", tmp_path, subset="train")
    assert f"{tmp_path / 'train.csv'}:{line}:" in str(info.value)


def test_every_bad_row_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(HEADER + "walk,abcdefghijk,0,10,train\n" + "walk,a b,0,10,train\n"
                                        + "walk,abcdefghijk,5,1,train\n")
    with pytest.raises(ValueError, match="2 bad lines") as info:
        load_split("kinetics", tmp_path, subset="train")
    assert "train.csv:3" in str(info.value) and "train.csv:4" in str(info.value)


def test_validation_label_unknown_to_training(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(HEADER + "walk,abcdefghijk,0,10,train\n")
    (tmp_path / "validate.csv").write_text(HEADER + "walk,abcdefghijk,0,10,val\nswim,abcdefghijk,0,10,val\n")
    with pytest.raises(ValueError, match=r"validate.csv:3: label 'swim' is not a class of train.csv \(1 classes"):
        load_split("kinetics", tmp_path, subset="test")


@pytest.mark.parametrize("text, message", [
    ("label,youtube_id,time_end\nwalk,abcdefghijk,10\n", r"train.csv:1: header lacks column\(s\) \['time_start'\]"),
    ("", "train.csv: empty file"),
    (HEADER, "train.csv: no clip listed"),
])
def test_bad_csv_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_split("kinetics", tmp_path, subset="train")


def test_non_utf8_csv_is_named(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes(HEADER.encode() + b"caf\xe9,abcdefghijk,0,10,train\n")
    with pytest.raises(ValueError, match=r"train.csv: not UTF-8 text"):
        load_split("kinetics", tmp_path, subset="train")


def test_missing_csv_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Kinetics annotation file for 'train' not found .*train.csv"):
        load_split("kinetics", tmp_path, subset="train")
    (tmp_path / "train.csv").write_text(HEADER + "walk,abcdefghijk,0,10,train\n")
    with pytest.raises(FileNotFoundError, match=r"for 'test' not found .*validate.csv, val.csv"):
        load_split("kinetics", tmp_path, subset="test")


def test_train_and_test_skip_the_missing_clips(kinetics: Path, tmp_path: Path) -> None:
    import json

    saved, out = train_then_test("kinetics", kinetics, tmp_path)
    assert saved["data"]["flip"] is True
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    assert metrics["final"]["level"] == "off7" and metrics["num_videos"] == 3
    assert sorted(metrics["final"]["per_class_accuracy"]) == sorted(KINETICS_CLASSES)
