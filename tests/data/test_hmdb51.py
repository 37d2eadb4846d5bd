"""HMDB-51 layout parsing: split files per class, ids 0/1/2, frames_root, and bad split lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from offnet.data.datasets import load_split
from offnet.data.hmdb51 import find_hmdb51_layout

# Unsorted on purpose: labels follow the sorted class names.
VIDEOS = {
    "wave": [("wave_a.avi", 1), ("wave_b.avi", 2), ("wave_c.avi", 0)],
    "brush_hair": [("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1), ("Ünïcödé_brush_hair_0.avi", 2)],
    "climb": [("climb#1_(x).avi", 1), ("climb_2.avi", 2)],
}


def make_hmdb(root: Path, *, video_dir: str = "videos", extra: dict[str, str] | None = None) -> Path:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for name, videos in VIDEOS.items():
        for video, _ in videos:
            path = root / video_dir / name / video
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        # the official files end every line with a space
        text = "".join(f"{v} {i} \n" for v, i in videos) + (extra or {}).get(name, "")
        (splits / f"{name}_test_split1.txt").write_text(text)
        (splits / f"{name}_test_split2.txt").write_text(f"{videos[0][0]} 2\n")
    return root


@pytest.mark.parametrize("video_dir", ["videos", "hmdb51_org", "."])
def test_video_folder_variants(tmp_path: Path, video_dir: str) -> None:
    make_hmdb(tmp_path, video_dir=video_dir)
    found, files = find_hmdb51_layout(tmp_path, 1)
    assert found == (tmp_path / video_dir if video_dir != "." else tmp_path)
    assert list(files) == ["brush_hair", "climb", "wave"]


def test_train_test_ids_and_labels(tmp_path: Path) -> None:
    make_hmdb(tmp_path)
    train = load_split("hmdb51", tmp_path, split=1, subset="train")
    test = load_split("hmdb51", tmp_path, split=1, subset="test")
    assert train.class_names == ["brush_hair", "climb", "wave"]
    assert [(r.path.name, r.label) for r in train.records] == [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0), ("climb#1_(x).avi", 1), ("wave_a.avi", 2),
    ]
    assert [(r.path.name, r.label) for r in test.records] == [
        ("Ünïcödé_brush_hair_0.avi", 0), ("climb_2.avi", 1), ("wave_b.avi", 2),
    ]
    assert all(r.path.is_file() for r in train.records + test.records)
    assert test.records[0].source == "brush_hair_test_split1.txt:2"
    # id 0 (wave_c) is in neither subset
    assert "wave_c.avi" not in {r.path.name for r in train.records + test.records}


def test_split_two_and_missing_split(tmp_path: Path) -> None:
    make_hmdb(tmp_path)
    assert len(load_split("hmdb51", tmp_path, split=2, subset="test").records) == 3
    assert load_split("hmdb51", tmp_path, split=2, subset="train").records == []
    with pytest.raises(FileNotFoundError, match="test_split3.txt"):
        load_split("hmdb51", tmp_path, split=3)
    with pytest.raises(ValueError, match="split 0 does not exist"):
        load_split("hmdb51", tmp_path, split=0)


def test_frames_root(tmp_path: Path) -> None:
    make_hmdb(tmp_path / "hmdb")
    frames = tmp_path / "frames"
    frames.mkdir()
    data = load_split("hmdb51", tmp_path / "hmdb", subset="test", frames_root=frames)
    assert data.records[2].path == frames / "wave" / "wave_b"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("wave_d.avi\n", "2 columns"),
        ("wave_d.avi 1 extra\n", "2 columns"),
        ("wave_d.avi 3\n", "id must be 0"),
        ("../../../etc/passwd 1\n", "must stay inside the data root"),
        ("../climb/climb_2.avi 1\n", "escapes the data root"),
        ("sub/wave_a.avi 1\n", "not a file name of class folder"),
        ("/etc/passwd 1\n", "absolute"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    make_hmdb(tmp_path, extra={"wave": line})
    split_file = tmp_path / "testTrainMulti_7030_splits" / "wave_test_split1.txt"
    with pytest.raises(ValueError, match=message) as info:
        load_split("hmdb51", tmp_path, subset="train")
    assert f"{split_file}:4" in str(info.value)
