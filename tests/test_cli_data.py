"""``offnet data synth``, ``data check`` and ``extract-flow`` end to end: exit codes and output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from offnet.cli import main
from offnet.data.decode import clear_cache


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 classes x 3 videos (2 train, 1 test), 32x32, 8 frames, written by the CLI once per module."""
    root = tmp_path_factory.mktemp("cli") / "synth"
    code = main(["data", "synth", str(root), "--classes", "SlideLeft,SlideRight", "--videos-per-class", "3",
                 "--size", "32", "--frames", "8"])
    assert code == 0
    return root


@pytest.fixture
def dataset(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy each test may damage."""
    clear_cache()
    return Path(shutil.copytree(synth_root, tmp_path / "ucf"))


def test_check_clean_dataset_and_write_lists(dataset: Path, tmp_path: Path, capsys) -> None:
    lists = tmp_path / "lists"
    code = main(["data", "check", "--dataset", "ucf101", "--root", str(dataset), "--min-frames", "8",
                 "--write-lists", str(lists), "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "train: 4 listed, 4 usable, 0 bad" in out and "test: 2 listed, 2 usable, 0 bad" in out
    assert "SlideLeft" in out and "OK: 6 usable" in out
    assert (lists / "test_split1.txt").read_text().splitlines() == [
        "SlideLeft/v_SlideLeft_g01_c01.avi 8 0", "SlideRight/v_SlideRight_g01_c01.avi 8 1",
    ]
    # the written lists are a dataset of their own
    code = main(["data", "check", "--dataset", "list", "--root", str(dataset / "videos"),
                 "--train-list", str(lists / "train_split1.txt"), "--class-file", str(lists / "classes.txt")])
    assert code == 0
    assert "train: 4 listed, 4 usable" in capsys.readouterr().out


def test_check_lists_every_bad_video_and_skip_policy(dataset: Path, capsys) -> None:
    videos = dataset / "videos"
    empty = videos / "SlideLeft" / "v_SlideLeft_g02_c01.avi"
    empty.write_bytes(b"")
    text = videos / "SlideRight" / "v_SlideRight_g03_c01.avi"
    text.write_text("not a video\n")
    missing = videos / "SlideRight" / "v_SlideRight_g01_c01.avi"
    missing.unlink()
    code = main(["data", "check", "--dataset", "ucf101", "--root", str(dataset)])
    out = capsys.readouterr().out
    assert code == 1
    assert "3 bad video(s)" in out
    for kind, path in (("empty", empty), ("unreadable", text), ("missing", missing)):
        assert f"{kind}: {path}" in out
    assert "FAILED" in out

    code = main(["data", "check", "--dataset", "ucf101", "--root", str(dataset), "--on-bad-video", "skip"])
    out = capsys.readouterr().out
    assert code == 0
    assert "OK: 3 usable video(s) (3 bad video(s) will be skipped)" in out


def test_check_too_short(dataset: Path, capsys) -> None:
    code = main(["data", "check", "--dataset", "ucf101", "--root", str(dataset), "--min-frames", "9"])
    out = capsys.readouterr().out
    assert code == 1 and out.count("too_short:") == 6
    code = main(["data", "check", "--dataset", "ucf101", "--root", str(dataset), "--min-frames", "9",
                 "--on-bad-video", "skip"])
    assert code == 1 and "no usable video" in capsys.readouterr().out


def test_bad_split_line_is_a_user_error(dataset: Path, capsys) -> None:
    trainlist = dataset / "ucfTrainTestlist" / "trainlist01.txt"
    trainlist.write_text(trainlist.read_text() + "SlideLeft/v_SlideLeft_g09_c01.avi 2\n")
    code = main(["data", "check", "--dataset", "ucf101", "--root", str(dataset)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{trainlist}:5" in err and "does not match the class folder 'SlideLeft'" in err


def test_extract_flow_then_check_frames(dataset: Path, tmp_path: Path, capsys) -> None:
    frames = tmp_path / "frames"
    args = ["extract-flow", "--root", str(dataset / "videos"), "--out", str(frames), "--workers", "1",
            "--algorithm", "farneback", "--size", "48"]
    assert main(args) == 0
    assert "done 6, skipped 0 (already extracted), failed 0; 48 frames" in capsys.readouterr().out
    assert main(args) == 0
    assert "done 0, skipped 6" in capsys.readouterr().out

    check = ["data", "check", "--dataset", "ucf101", "--root", str(dataset), "--frames-root", str(frames)]
    assert main(check) == 0
    out = capsys.readouterr().out
    assert "frame folders under" in out and "OK: 6 usable" in out

    (frames / "SlideRight" / "v_SlideRight_g02_c01" / "flow_y_00003.jpg").unlink()
    assert main(check) == 1
    out = capsys.readouterr().out
    assert "frame_mismatch:" in out and "v_SlideRight_g02_c01" in out


def test_extract_flow_reports_failed_video(dataset: Path, tmp_path: Path, capsys) -> None:
    bad = dataset / "videos" / "SlideLeft" / "v_SlideLeft_g01_c01.avi"
    bad.write_bytes(bad.read_bytes()[:200])
    code = main(["extract-flow", "--root", str(dataset / "videos"), "--out", str(tmp_path / "f"),
                 "--workers", "1", "--algorithm", "farneback", "--no-rgb"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAILED {bad}" in out and "done 5, skipped 0 (already extracted), failed 1" in out
    assert not list((tmp_path / "f" / "SlideRight" / "v_SlideRight_g01_c01").glob("img_*"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract-flow", "--root", "{root}", "--out", "{tmp}/o", "--size", "big"], "WIDTHxHEIGHT"),
        (["data", "check", "--dataset", "list", "--root", "{root}"], "--train-list"),
        (["data", "check", "--dataset", "ucf101", "--root", "{root}", "--split", "5"], "split 5 does not"),
        (["data", "synth", "{tmp}/s", "--classes", "Jump"], "unknown synthetic class"),
    ],
)
def test_user_errors(dataset: Path, tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    argv = [a.format(root=dataset, tmp=tmp_path) for a in argv]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_data_without_action_prints_help(capsys) -> None:
    assert main(["data"]) == 2
    assert "check" in capsys.readouterr().out
