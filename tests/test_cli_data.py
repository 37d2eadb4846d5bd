"""``offnet data synth``, ``data check`` and ``extract-flow`` end to end: exit codes and output."""

from __future__ import annotations

import json
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
    argv = ["extract-flow", "--root", str(dataset / "videos"), "--out", str(tmp_path / "f"), "--workers", "1",
            "--algorithm", "farneback", "--no-rgb"]
    code = main(argv)  # --on-bad-video fail (default): no new video after the bad one, exit 1
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAILED {bad}" in out and "failed 1" in out and "stopped at a bad video" in out
    assert main([*argv, "--on-bad-video", "skip"]) == 0  # resumes, lists the bad video, goes on
    out = capsys.readouterr().out
    assert f"FAILED {bad}" in out and "failed 1" in out and "stopped" not in out
    assert len([p for p in (tmp_path / "f").rglob("v_*") if p.is_dir()]) == 5
    assert not list((tmp_path / "f" / "SlideRight" / "v_SlideRight_g01_c01").glob("img_*"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract-flow", "--root", "{root}", "--out", "{tmp}/o", "--size", "big"], "WIDTHxHEIGHT"),
        (["data", "check", "--dataset", "list", "--root", "{root}"], "--train-list"),
        (["data", "check", "--dataset", "ucf101", "--root", "{root}", "--split", "5"], "split 5 does not"),
        (["data", "synth", "{tmp}/s", "--classes", "Jump"], "unknown actions class(es) ['Jump']"),
    ],
)
def test_user_errors(dataset: Path, tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    argv = [a.format(root=dataset, tmp=tmp_path) for a in argv]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_data_without_action_prints_help(capsys) -> None:
    assert main(["data"]) == 2
    assert "check" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ --preset motion
MOTION_ARGS = ["--preset", "motion", "--size", "64x48", "--frames", "12", "--videos-per-class", "3",
               "--classes", "MoveRight,MoveLeft"]


@pytest.fixture(scope="module")
def motion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The motion preset: 2 classes x 3 videos (2 train, 1 test), 64x48, 12 frames, written once per module."""
    root = tmp_path_factory.mktemp("cli_motion") / "motion"
    assert main(["data", "synth", str(root), *MOTION_ARGS]) == 0
    return root


def test_synth_motion_preset_writes_ucf_layout(motion_root: Path, capsys) -> None:
    lists = motion_root / "ucfTrainTestlist"
    assert sorted(p.name for p in (motion_root / "videos").iterdir()) == ["MoveLeft", "MoveRight"]
    for name in ("MoveRight", "MoveLeft"):
        assert sorted(p.name for p in (motion_root / "videos" / name).iterdir()) == [
            f"v_{name}_g0{g}_c01.avi" for g in (1, 2, 3)]
    assert (lists / "classInd.txt").read_text().splitlines() == ["1 MoveRight", "2 MoveLeft"]
    assert (lists / "trainlist01.txt").read_text().splitlines() == [
        "MoveRight/v_MoveRight_g02_c01.avi 1", "MoveRight/v_MoveRight_g03_c01.avi 1",
        "MoveLeft/v_MoveLeft_g02_c01.avi 2", "MoveLeft/v_MoveLeft_g03_c01.avi 2",
    ]
    assert (lists / "testlist01.txt").read_text().splitlines() == [
        "MoveRight/v_MoveRight_g01_c01.avi", "MoveLeft/v_MoveLeft_g01_c01.avi",
    ]
    info = json.loads((motion_root / "synth.json").read_text())
    params = info["params"]
    assert params["preset"] == "motion" and params["classes"] == ["MoveRight", "MoveLeft"]
    assert (params["width"], params["height"], params["num_frames"], params["seed"]) == (64, 48, 12, 0)
    assert params["speed"] == pytest.approx([1.5 * 64 / 160, 3.0 * 64 / 160])  # default, scaled to the width
    assert params["turn"] == [3.0, 6.0] and params["zoom"] == [1.2, 2.0]
    assert info["pairs"] == [["MoveRight", "MoveLeft"]]
    # the written dataset passes `data check`, every video with its 12 frames
    code = main(["data", "check", "--dataset", "ucf101", "--root", str(motion_root), "--min-frames", "12"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "train: 4 listed, 4 usable, 0 bad" in out and "OK: 6 usable" in out


def test_synth_motion_again_is_cached_other_parameters_fail(motion_root: Path, capsys) -> None:
    marker = motion_root / "synth.json"
    before = marker.stat().st_mtime_ns
    assert main(["data", "synth", str(motion_root), *MOTION_ARGS]) == 0
    assert f"synthetic dataset in {motion_root}" in capsys.readouterr().out
    assert marker.stat().st_mtime_ns == before
    assert main(["data", "synth", str(motion_root), *MOTION_ARGS, "--seed", "1"]) == 1
    assert "other parameters" in capsys.readouterr().err
    assert marker.stat().st_mtime_ns == before


def test_synth_motion_ranges_reach_the_dataset(tmp_path: Path) -> None:
    root = tmp_path / "m"
    code = main(["data", "synth", str(root), "--preset", "motion", "--size", "48X48", "--frames", "8",
                 "--videos-per-class", "3", "--classes", "ZoomIn", "--speed", "1,2", "--turn", "2,4",
                 "--zoom", "1,1.5", "--seed", "3"])
    assert code == 0
    params = json.loads((root / "synth.json").read_text())["params"]
    assert (params["width"], params["height"], params["num_frames"], params["seed"]) == (48, 48, 8, 3)
    assert (params["speed"], params["turn"], params["zoom"]) == ([1.0, 2.0], [2.0, 4.0], [1.0, 1.5])
    assert len(list((root / "videos" / "ZoomIn").glob("*.avi"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "motion", "--size", "64"], "--size for the motion preset is WxH"),
        (["--preset", "motion", "--size", "axb"], "--size for the motion preset is WxH"),
        (["--preset", "motion", "--size", "64x48x2"], "--size for the motion preset is WxH"),
        (["--preset", "motion", "--size", "65x48"], "frame size must be even and at least 48 px"),
        (["--preset", "motion", "--size", "32x24"], "frame size must be even and at least 48 px"),
        (["--preset", "motion", "--speed", "1"], "--speed takes two numbers LOW,HIGH"),
        (["--preset", "motion", "--speed", "fast,faster"], "--speed takes two numbers LOW,HIGH"),
        (["--preset", "motion", "--speed", "3,1"], "speed range must be two positive numbers, low <= high"),
        (["--preset", "motion", "--turn", "0,2"], "turn range must be two positive numbers"),
        (["--preset", "motion", "--zoom", "2"], "--zoom takes two numbers LOW,HIGH"),
        (["--preset", "motion", "--frames", "4"], "num_frames must be >= 8"),
        (["--preset", "motion", "--classes", "MoveRight,Jump"], "unknown motion class(es) ['Jump']"),
        (["--preset", "motion", "--classes", "SlideLeft"], "unknown motion class(es) ['SlideLeft']"),
        (["--preset", "motion", "--classes", "MoveRight,MoveRight"], "classes must not repeat"),
        (["--classes", "MoveRight"], "unknown actions class(es) ['MoveRight']"),
        (["--speed", "1,2"], "--speed and --paired apply to --preset motion only"),
        (["--preset", "actions", "--speed", "1,2"], "--speed and --paired apply to --preset motion only"),
        (["--paired"], "--speed and --paired apply to --preset motion only"),
        (["--size", "64x48"], "--size for the actions preset is one side in px"),
    ],
)
def test_synth_user_errors(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    root = tmp_path / "s"
    assert main(["data", "synth", str(root), "--videos-per-class", "3", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("offnet: error: ") and message in err, err
    assert not root.exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_synth_unknown_preset_is_an_argparse_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", str(tmp_path / "s"), "--preset", "sports"])
    assert exc.value.code == 2
    assert "invalid choice: 'sports'" in capsys.readouterr().err


@pytest.mark.parametrize("preset", [["--preset", "motion", "--size", "48x48", "--classes", "MoveRight"],
                                    ["--size", "32", "--classes", "SlideLeft"]])
def test_synth_frames_zero_is_rejected(tmp_path: Path, capsys, preset: list[str]) -> None:
    code = main(["data", "synth", str(tmp_path / "s"), "--videos-per-class", "3", "--frames", "0", *preset])
    assert code == 1 and "num_frames must be >= 8" in capsys.readouterr().err
