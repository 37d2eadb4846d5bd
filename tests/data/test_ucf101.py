"""UCF-101 layout parsing: the three accepted video folders, splits, frames_root, and bad split lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from offnet.data.datasets import load_split
from offnet.data.ucf101 import find_ucf101_layout

CLASSES = ["ApplyEyeMakeup", "Basketball", "Ünïcödé", "HandstandPushups"]


def make_ucf(root: Path, *, video_dir: str = "videos", train_extra: str = "", test_extra: str = "") -> Path:
    """Empty .avi files (parsing never opens them) and split 1/2 lists in the official format."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, start=1)))
    train, test = [], []
    for label, c in enumerate(CLASSES, start=1):
        file_class = "HandStandPushups" if c == "HandstandPushups" else c  # the official case mismatch
        for g in (1, 2, 3):
            rel = f"{c}/v_{file_class}_g{g:02d}_c01.avi"
            path = root / video_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            (test.append(rel) if g == 1 else train.append(f"{rel} {label}"))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n" + train_extra)
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n" + test_extra)
    (lists / "trainlist02.txt").write_text(train[0] + "\n")
    (lists / "testlist02.txt").write_text(test[0] + "\n")
    return root


@pytest.mark.parametrize("video_dir", ["videos", "UCF-101", "."])
def test_video_folder_variants(tmp_path: Path, video_dir: str) -> None:
    make_ucf(tmp_path, video_dir=video_dir)
    found, split_dir, names = find_ucf101_layout(tmp_path)
    assert found == (tmp_path / video_dir if video_dir != "." else tmp_path)
    assert split_dir == tmp_path / "ucfTrainTestlist"
    assert names == CLASSES
    train = load_split("ucf101", tmp_path, split=1, subset="train")
    assert all(r.path.is_file() for r in train.records)


def test_train_and_test_labels(tmp_path: Path) -> None:
    make_ucf(tmp_path)
    train = load_split("ucf101", tmp_path, subset="train")
    test = load_split("ucf101", tmp_path, subset="test")
    assert train.class_names == CLASSES
    assert len(train.records) == 8 and len(test.records) == 4
    # labels are 0-based, train from the 1-based column, test from the class folder
    assert [r.label for r in train.records] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [r.label for r in test.records] == [0, 1, 2, 3]
    assert test.records[2].path.name == "v_Ünïcödé_g01_c01.avi"
    assert test.records[2].source == "testlist01.txt:3"
    assert train.base == tmp_path / "videos"


def test_split_two_and_bad_split(tmp_path: Path) -> None:
    make_ucf(tmp_path)
    assert len(load_split("ucf101", tmp_path, split=2, subset="train").records) == 1
    with pytest.raises(ValueError, match=r"split 4 does not exist.*\[1, 2, 3\]"):
        load_split("ucf101", tmp_path, split=4)
    with pytest.raises(FileNotFoundError, match="trainlist03.txt"):
        load_split("ucf101", tmp_path, split=3)


def test_frames_root_points_at_frame_folders(tmp_path: Path) -> None:
    make_ucf(tmp_path / "ucf")
    frames = tmp_path / "frames"
    frames.mkdir()
    data = load_split("ucf101", tmp_path / "ucf", subset="test", frames_root=frames)
    assert data.records[1].path == frames / "Basketball" / "v_Basketball_g01_c01"
    assert data.base == frames


@pytest.mark.parametrize(
    ("subset", "line", "message"),
    [
        ("train", "Basketball/v_Basketball_g09_c01.avi 1", r"label 1 \(ApplyEyeMakeup\) does not match"),
        ("train", "Basketball/v_Basketball_g09_c01.avi 99", r"label 99 \(no class\) does not match"),
        ("train", "Basketball/v_Basketball_g09_c01.avi", "2 columns"),
        ("train", "Basketball/v_Basketball_g09_c01.avi 2 7", "2 columns"),
        ("train", "Basketball/v_Basketball_g09_c01.avi two", "must be an integer"),
        ("train", "Skiing/v_Skiing_g01_c01.avi 1", "unknown class folder 'Skiing'"),
        ("test", "v_Basketball_g09_c01.avi", "unknown class folder ''"),
        ("test", "Basketball/a.avi 2 3", "1 or 2 columns"),
        ("train", "../../etc/passwd 1", "must stay inside the data root"),
        ("test", "/etc/passwd", "must stay inside the data root"),
    ],
)
def test_bad_split_line_names_file_and_line(tmp_path: Path, subset: str, line: str, message: str) -> None:
    make_ucf(tmp_path, **{f"{subset}_extra": line + "\n"})
    list_file = tmp_path / "ucfTrainTestlist" / f"{subset}list01.txt"
    bad_line = len(list_file.read_text().splitlines())
    with pytest.raises(ValueError, match=message) as info:
        load_split("ucf101", tmp_path, subset=subset)
    assert f"{list_file}:{bad_line}" in str(info.value)


def test_missing_split_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        load_split("ucf101", tmp_path)


def test_bad_class_index_file(tmp_path: Path) -> None:
    make_ucf(tmp_path)
    (tmp_path / "ucfTrainTestlist" / "classInd.txt").write_text("1 A\n1 B\n")
    with pytest.raises(ValueError, match=r"classInd.txt:2: class index 1, expected 2"):
        load_split("ucf101", tmp_path)
