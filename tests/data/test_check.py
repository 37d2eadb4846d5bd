"""Dataset check and the bad-video policy: every kind of bad input is found, named, and handled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from offnet.data.check import (
    check_dataset,
    count_frame_folder,
    inspect_record,
    validate_records,
    write_split_lists,
)
from offnet.data.datasets import load_split
from offnet.data.decode import clear_cache
from offnet.data.records import VideoRecord


@pytest.fixture(autouse=True)
def _fresh_decode_cache():
    clear_cache()
    yield
    clear_cache()


def _rec(path: Path, label: int = 0) -> VideoRecord:
    return VideoRecord(path=path, label=label, source="list.txt:1")


@pytest.fixture
def bad_videos(make_video: Callable[..., Path], tmp_path: Path) -> dict[str, Path]:
    """One good video and one of each kind of bad input, keyed by the kind ``inspect_record`` must report."""
    good = make_video("good.avi", num_frames=12)
    truncated = make_video("truncated.avi", num_frames=30)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.8)])  # the tail of the frames is gone
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "text.avi").write_text("this is a text file, not a video\n" * 50)
    return {
        "good": good,
        "truncated": truncated,
        "empty": tmp_path / "empty.avi",
        "unreadable": tmp_path / "text.avi",
        "missing": tmp_path / "missing.avi",
        "too_short": make_video("short.avi", num_frames=3),
    }


@pytest.mark.parametrize("kind", ["truncated", "empty", "unreadable", "missing", "too_short"])
def test_inspect_record_names_each_bad_kind(bad_videos: dict[str, Path], kind: str) -> None:
    record, bad = inspect_record(_rec(bad_videos[kind]), min_frames=5)
    assert bad is not None
    assert bad.kind == kind
    assert str(bad_videos[kind]) in str(bad)
    assert "list.txt:1" in str(bad)


def test_inspect_record_good_video_gets_frame_count(bad_videos: dict[str, Path]) -> None:
    record, bad = inspect_record(_rec(bad_videos["good"]), min_frames=5)
    assert bad is None
    assert record.num_frames == 12


def test_non_ascii_video_name(make_video: Callable[..., Path]) -> None:
    path = make_video("Ünïcödé/v_Ünïcödé_g01_c01.avi", num_frames=6)
    record, bad = inspect_record(_rec(path))
    assert bad is None and record.num_frames == 6


def test_validate_records_fail_lists_every_bad_file(bad_videos: dict[str, Path]) -> None:
    records = [_rec(p) for p in bad_videos.values()]
    with pytest.raises(ValueError, match="5 of 6 videos cannot be used") as info:
        validate_records(records, min_frames=5, on_bad_video="fail", workers=2)
    for kind, path in bad_videos.items():
        if kind != "good":
            assert str(path) in str(info.value)
    assert "--on-bad-video skip" in str(info.value)


def test_validate_records_skip_logs_and_returns(bad_videos: dict[str, Path], caplog) -> None:
    records = [_rec(p) for p in bad_videos.values()]
    with caplog.at_level(logging.WARNING, logger="offnet.data.check"):
        good, bad = validate_records(records, min_frames=5, on_bad_video="skip", workers=2)
    assert [r.path for r in good] == [bad_videos["good"]]
    assert good[0].num_frames == 12
    assert sorted(b.kind for b in bad) == ["empty", "missing", "too_short", "truncated", "unreadable"]
    assert "skipped 5 of 6 videos" in caplog.text
    assert str(bad_videos["empty"]) in caplog.text


def test_validate_records_skip_with_nothing_left_raises(bad_videos: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="none of the 2 videos is usable"):
        validate_records([_rec(bad_videos["empty"]), _rec(bad_videos["missing"])], on_bad_video="skip")


def test_validate_records_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError, match=r"on_bad_video must be one of \['fail', 'skip'\]"):
        validate_records([], on_bad_video="ignore")


# ------------------------------------------------------------------------------------------ frame folders


@pytest.mark.parametrize(
    ("rgb", "fx", "fy", "usable", "problem"),
    [
        (12, 11, 11, 11, None),  # N RGB, N-1 flow: the rule
        (12, 0, 0, 12, None),  # RGB only
        (0, 11, 11, 11, None),  # flow only (--no-rgb)
        (12, 12, 12, 12, "expected 11"),  # equal counts break the rule
        (12, 11, 10, 10, "11 flow_x but 10 flow_y"),
        (0, 0, 0, 0, "no img_00001.jpg"),
    ],
)
def test_count_frame_folder_rule(tmp_path: Path, rgb: int, fx: int, fy: int, usable: int, problem) -> None:
    for prefix, n in (("img", rgb), ("flow_x", fx), ("flow_y", fy)):
        for i in range(1, n + 1):
            (tmp_path / f"{prefix}_{i:05d}.jpg").write_bytes(b"")
    counts = count_frame_folder(tmp_path)
    assert (counts.rgb, counts.flow_x, counts.flow_y, counts.usable) == (rgb, fx, fy, usable)
    if problem is None:
        assert counts.problems == ()
    else:
        assert any(problem in p for p in counts.problems), counts.problems


def test_frame_folder_gap_is_a_mismatch(make_frame_folder: Callable[..., Path]) -> None:
    folder = make_frame_folder("v_x", num_frames=8)
    (folder / "img_00004.jpg").unlink()
    (folder / "flow_x_00008.jpg").write_bytes((folder / "flow_x_00007.jpg").read_bytes())
    (folder / "flow_x_00007.jpg").unlink()  # same count, but a gap
    _, bad = inspect_record(_rec(folder))
    assert bad is not None and bad.kind == "frame_mismatch"
    assert "not numbered 1..7" in bad.message and "missing e.g. [4]" in bad.message


def test_frame_folder_good_and_short(make_frame_folder: Callable[..., Path]) -> None:
    folder = make_frame_folder("v_y", num_frames=6)
    record, bad = inspect_record(_rec(folder), min_frames=5)
    assert bad is None and record.num_frames == 5  # the flow count: valid for every modality
    _, bad = inspect_record(_rec(folder), min_frames=6)
    assert bad is not None and bad.kind == "too_short"


# ------------------------------------------------------------------------------- check_dataset + lists


def _ucf(root: Path, make_video: Callable[..., Path]) -> Path:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Run\n2 Ünïcödé\n")
    for rel, n in [
        ("Run/v_Run_g01_c01.avi", 8), ("Run/v_Run_g02_c01.avi", 8),
        ("Ünïcödé/v_Ünïcödé_g01_c01.avi", 8), ("Ünïcödé/v_Ünïcödé_g02_c01.avi", 2),
    ]:
        make_video(str(Path(root.name) / "videos" / rel), num_frames=n)
    (lists / "trainlist01.txt").write_text(
        "Run/v_Run_g02_c01.avi 1\nÜnïcödé/v_Ünïcödé_g02_c01.avi 2\nRun/v_Run_g09_c01.avi 1\n"
    )
    (lists / "testlist01.txt").write_text("Run/v_Run_g01_c01.avi\nÜnïcödé/v_Ünïcödé_g01_c01.avi\n")
    return root


def test_check_dataset_report_and_lists(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    root = _ucf(tmp_path / "ucf", make_video)
    report = check_dataset("ucf101", root, split=1, min_frames=4, workers=2)
    train, test = report.subsets["train"], report.subsets["test"]
    assert (train.total, len(train.good), len(test.good)) == (3, 1, 2)
    assert sorted((b.kind, b.record.source) for b in report.bad) == [
        ("missing", "trainlist01.txt:3"), ("too_short", "trainlist01.txt:2"),
    ]
    assert report.per_class() == [
        ("Run", {"train": 1, "test": 1}, {"train": 1, "test": 0}),
        ("Ünïcödé", {"train": 0, "test": 1}, {"train": 1, "test": 0}),
    ]
    assert not report.ok("fail") and report.ok("skip")

    written = write_split_lists(report, tmp_path / "lists")
    assert [p.name for p in written] == ["classes.txt", "train_split1.txt", "test_split1.txt"]
    assert (tmp_path / "lists" / "test_split1.txt").read_text() == (
        "Run/v_Run_g01_c01.avi 8 0\nÜnïcödé/v_Ünïcödé_g01_c01.avi 8 1\n"
    )
    back = load_split("list", report.base, list_file=written[2], class_file=written[0])
    assert [(r.path, r.label, r.num_frames) for r in back.records] == [
        (r.path, r.label, r.num_frames) for r in test.good
    ]


def test_check_dataset_skip_with_nothing_usable(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a.avi 0\nb.avi 0\n")
    report = check_dataset("list", tmp_path, list_files={"train": tmp_path / "list.txt"})
    assert [b.kind for b in report.bad] == ["missing", "missing"]
    assert not report.ok("skip") and not report.ok("fail")
