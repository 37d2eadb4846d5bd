"""``offnet bench data`` (offnet.tools.bench, offnet.cli.bench) on a tiny generated set."""

from __future__ import annotations

import pytest

from offnet.cli import main
from offnet.data.decode import count_frames
from offnet.tools.bench import (
    DataBenchResult,
    available_encoder,
    bench_data,
    find_bench_data,
    format_results,
    generate_bench_data,
)


def test_generate_and_find_bench_data(tmp_path):
    videos, folders = generate_bench_data(tmp_path, num_videos=2, num_frames=12, height=48, width=64)
    assert [r.num_frames for r in videos] == [12, 12]
    assert all(len(list(f.path.glob("img_*.jpg"))) == 12 for f in folders)
    found_videos, found_folders = find_bench_data(tmp_path)
    assert len(found_videos) == 2 and len(found_folders) == 2
    with pytest.raises(FileNotFoundError, match="no video files"):
        find_bench_data(_empty_dir(tmp_path))


def _empty_dir(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_bench_data_counts_every_clip(tmp_path):
    generate_bench_data(tmp_path, num_videos=2, num_frames=12, height=48, width=64)
    results = bench_data(root=tmp_path, workers=[0], segments=3, size=32, clips=6, batch_size=4)
    assert [(r.source, r.workers, r.clips) for r in results] == [("avi", 0, 6), ("frames", 0, 6)]
    assert all(r.seconds > 0 and r.clips_per_s > 0 for r in results)


def test_every_container_is_timed_webm_too(tmp_path):
    if available_encoder(".webm") is None:
        pytest.skip("this PyAV build has no VP9/VP8 encoder: no .webm to time")
    videos, folders = generate_bench_data(tmp_path, num_videos=2, num_frames=12, height=48, width=64,
                                          containers=(".avi", ".mp4", ".webm"))
    assert sorted(p.path.name for p in videos)[-2:] == ["v_Bench_g01_c02.mp4", "v_Bench_g01_c02.webm"]
    assert len(folders) == 2 and all(count_frames(v.path) == 12 for v in videos)
    results = bench_data(root=tmp_path, workers=[0], segments=3, size=32, clips=4, batch_size=2)
    assert [r.source for r in results] == ["avi", "mp4", "webm", "frames"] and all(r.clips == 4 for r in results)


def test_a_container_without_encoder_is_skipped(tmp_path, monkeypatch, caplog):
    from offnet.tools import bench

    monkeypatch.setitem(bench.CONTAINERS, ".webm", (("no-such-encoder", {}),))
    videos, _ = generate_bench_data(tmp_path, num_videos=1, num_frames=6, height=48, width=64,
                                    containers=(".avi", ".webm"))
    assert [v.path.suffix for v in videos] == [".avi"]
    assert "no encoder for .webm (tried no-such-encoder)" in caplog.text
    with pytest.raises(ValueError, match="unknown container '.flv'"):
        available_encoder(".flv")


def test_format_results():
    table = format_results([DataBenchResult("video", 2, 3, 112, 64, 2.0)])
    assert "clips/s" in table.splitlines()[0] and table.splitlines()[-1].split()[-1] == "32.0"


def test_cli_bench_data_prints_a_table(tmp_path, capsys):
    generate_bench_data(tmp_path, num_videos=1, num_frames=10, height=48, width=64)
    rc = main(["bench", "data", "--root", str(tmp_path), "--workers", "0", "--clips", "2", "--size", "32"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "avi" in out and "frames" in out and "clips/s" in out


def test_cli_bench_errors(tmp_path, capsys):
    assert main(["bench", "data", "--root", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "data", "--workers", "-1"])
    with pytest.raises(SystemExit):
        main(["bench", "data", "--containers", "avi,flv"])
    assert "--containers takes some of avi,mp4,webm; got 'avi,flv'" in capsys.readouterr().err
    assert main(["bench"]) == 2
