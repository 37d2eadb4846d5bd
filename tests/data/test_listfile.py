"""List files, class files, path safety, atomic writes, and load_split's ``folder`` / ``list`` layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from offnet.data.datasets import load_split
from offnet.data.listfile import (
    atomic_write_text,
    format_list_line,
    frames_dir_for,
    parse_list_file,
    read_class_file,
    resolve_inside,
)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a/b.avi", "a/b.avi"),
        ("a/./b.avi", "a/b.avi"),
        ("a/../c/b.avi", "c/b.avi"),  # climbs but stays inside
        ("Ünïcödé/v_Ünïcödé_g01_c01.avi", "Ünïcödé/v_Ünïcödé_g01_c01.avi"),
        ("a\\b.avi", "a/b.avi"),  # Windows separators
    ],
)
def test_resolve_inside_accepts(tmp_path: Path, relative: str, expected: str) -> None:
    assert resolve_inside(tmp_path, relative) == tmp_path / expected


@pytest.mark.parametrize(
    ("relative", "word"),
    [
        ("../../etc/passwd", "escapes"),
        ("a/../../x.avi", "escapes"),
        ("..", "escapes"),
        (".", "escapes"),  # the root itself is not a video
        ("/etc/passwd", "absolute"),
        ("C:\\videos\\x.avi", "absolute"),
    ],
)
def test_resolve_inside_refuses(tmp_path: Path, relative: str, word: str) -> None:
    with pytest.raises(ValueError, match="must stay inside the data root") as info:
        resolve_inside(tmp_path, relative)
    assert word in str(info.value)


def test_read_class_file_both_forms(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("run\n\n# comment\nwalk\n")
    indexed = tmp_path / "classInd.txt"
    indexed.write_text("\ufeff1 run\r\n2 walk\r\n")  # BOM and CRLF as Windows editors write them
    assert read_class_file(plain) == ["run", "walk"]
    assert read_class_file(indexed) == ["run", "walk"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("run\nwalk\nrun\n", 3, "repeats line 1"),
        ("1 run\n3 walk\n", 2, "expected 2"),
        ("run fast now\n", 1, "expected one class name"),
    ],
)
def test_read_class_file_errors_name_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    f = tmp_path / "classes.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_class_file(f)
    assert f"{f}:{line}" in str(info.value)


def test_parse_list_file_two_and_three_columns(tmp_path: Path) -> None:
    f = tmp_path / "train.txt"
    f.write_text("run/a.avi 0\nwalk/b 17 1\n")
    records = parse_list_file(f, tmp_path, class_names=["run", "walk"])
    assert [(r.path, r.label, r.num_frames, r.source) for r in records] == [
        (tmp_path / "run/a.avi", 0, None, "train.txt:1"),
        (tmp_path / "walk/b", 1, 17, "train.txt:2"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("run/a.avi", "2 or 3 columns"),
        ("run/a.avi 1 2 3", "2 or 3 columns"),
        ("run/a.avi one", "must be integers"),
        ("run/a.avi 2", "label 2 out of range"),
        ("run/a.avi -1", "out of range"),
        ("run/a.avi -3 0", "negative"),
        ("../../etc/passwd 0", "must stay inside the data root"),
        ("/etc/passwd 0", "absolute"),
    ],
)
def test_parse_list_file_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    f = tmp_path / "list.txt"
    f.write_text(f"run/ok.avi 0\n{line}\n")
    with pytest.raises(ValueError, match=message) as info:
        parse_list_file(f, tmp_path, class_names=["run", "walk"])
    assert f"{f}:2" in str(info.value)


def test_parse_list_file_reports_every_bad_line_at_once(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_text("a.avi x\nb.avi 0\n../c.avi 0\nd.avi\n")
    with pytest.raises(ValueError, match="3 bad lines") as info:
        parse_list_file(f, tmp_path)
    for n in (1, 3, 4):
        assert f"{f}:{n}" in str(info.value)


def test_missing_list_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        parse_list_file(tmp_path / "nope.txt", tmp_path)


def test_non_utf8_list_file(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_bytes("caf\u00e9.avi 0\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_list_file(f, tmp_path)


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "list.txt"
    atomic_write_text(target, "a 1\n")
    atomic_write_text(target, "b 2\n")
    assert target.read_text() == "b 2\n"
    assert [p.name for p in target.parent.iterdir()] == ["list.txt"]


def test_format_list_line() -> None:
    assert format_list_line("a/b.avi", None, 3) == "a/b.avi 3"
    assert format_list_line("a/b", 40, 3) == "a/b 40 3"
    with pytest.raises(ValueError, match="whitespace"):
        format_list_line("a b/c.avi", 4, 0)


def test_frames_dir_for_plain_and_nested(tmp_path: Path) -> None:
    videos = tmp_path / "data" / "videos"
    frames = tmp_path / "frames"
    video = videos / "Run" / "v_Run_g01_c01.avi"
    assert frames_dir_for(frames, videos, video) == frames / "Run" / "v_Run_g01_c01"
    # frames extracted from the dataset root: FRAMES/videos/<Class>/<stem>
    (frames / "videos" / "Run").mkdir(parents=True)
    assert frames_dir_for(frames, videos, video) == frames / "videos" / "Run" / "v_Run_g01_c01"


# ---------------------------------------------------------------------------------- load_split layouts


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_load_split_list_with_class_file(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("run\nwalk\n")
    (tmp_path / "train.txt").write_text("walk/ü.avi 1\nrun/a.avi 0\n")
    data = load_split("list", tmp_path, list_file=tmp_path / "train.txt", class_file=tmp_path / "classes.txt")
    assert data.class_names == ["run", "walk"]
    assert [(r.path.name, r.label) for r in data.records] == [("ü.avi", 1), ("a.avi", 0)]
    assert data.base == tmp_path


def test_load_split_list_without_class_file_names_labels(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("a.avi 2\n")
    data = load_split("list", tmp_path, list_file=tmp_path / "train.txt")
    assert data.class_names == ["0", "1", "2"]


def test_load_split_list_needs_list_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="list_file"):
        load_split("list", tmp_path)


def test_load_split_folder_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "walk" / "w1.mp4")
    _touch(tmp_path / "run" / "r2.avi")
    _touch(tmp_path / "run" / "r1.avi")
    _touch(tmp_path / "run" / "notes.txt")  # not a video: ignored
    (tmp_path / "run" / "frames_video").mkdir()
    _touch(tmp_path / "run" / "frames_video" / "img_00001.jpg")  # a frame folder counts as a video
    (tmp_path / ".hidden").mkdir()
    train = load_split("folder", tmp_path, subset="train")
    assert train.class_names == ["run", "walk"]
    assert [(r.path.name, r.label) for r in train.records] == [
        ("frames_video", 0), ("r1.avi", 0), ("r2.avi", 0), ("w1.mp4", 1),
    ]
    assert load_split("folder", tmp_path, subset="test").records == []


def test_load_split_folder_with_train_test(tmp_path: Path) -> None:
    _touch(tmp_path / "train" / "run" / "a.avi")
    _touch(tmp_path / "train" / "walk" / "b.avi")
    _touch(tmp_path / "test" / "walk" / "c.avi")
    test = load_split("folder", tmp_path, subset="test")
    assert test.class_names == ["run", "walk"]
    assert [(r.path.name, r.label) for r in test.records] == [("c.avi", 1)]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dataset": "kinetics700"}, ValueError, "unknown dataset"),
        ({"dataset": "folder", "subset": "val"}, ValueError, "unknown subset"),
        ({"dataset": "folder", "frames_root": "/nonexistent/frames"}, FileNotFoundError, "frames root"),
    ],
)
def test_load_split_argument_errors(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        load_split(root=tmp_path, **kwargs)


def test_load_split_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        load_split("folder", tmp_path / "absent")
