"""offnet bench live: incremental vs full recompute per new segment, side by side, with equal scores."""

import pytest
import torch

from offnet.cli import main
from offnet.tools.bench_live import bench_live, format_live_result

torch.set_num_threads(1)


def test_incremental_is_cheaper_than_recomputing_the_window_and_scores_agree():
    r = bench_live(backbone="tiny", window=8, size=64, repeats=3, warmup=1, num_classes=4)
    assert r.steps == 3 and r.incremental_s > 0 and r.full_s > 0
    assert r.max_difference < 1e-4
    # 1 backbone pass + 1 pair against 8 + 7: a wide margin even on a shared, noisy CPU
    assert r.speedup > 2, format_live_result(r)
    text = format_live_result(r)
    assert "per new segment" in text and "8 backbone passes + 7 OFF pairs" in text


def test_bench_live_cli(capsys):
    assert main(["bench", "live", "--backbone", "tiny", "--window", "3", "--size", "64", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "incremental (1 backbone pass + 1 OFF pair)" in out and "speed-up" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--window", "1"], "--window must be at least 2 segment(s) for off"),
    (["--size", "8"], "--size 8 px is too small"),
    (["--backbone", "vgg"], "unknown backbone 'vgg'"),
    (["--repeats", "0"], "--repeats and --streams must be at least 1"),
])
def test_bench_live_bad_options(capsys, argv, message):
    assert main(["bench", "live", "--backbone", "tiny", "--size", "64", *argv]) == 1
    assert message in capsys.readouterr().err
