"""offnet bench live: incremental vs full recompute per new segment, side by side, with equal scores."""

import pytest
import torch

from offnet.cli import main
from offnet.tools.bench_live import bench_live, format_live_result

torch.set_num_threads(1)


def test_bench_live_times_both_paths_and_their_scores_agree():
    r = bench_live(backbone="tiny", window=8, size=64, repeats=3, warmup=1, num_classes=4)
    assert r.steps == 3 and r.incremental_s > 0 and r.full_s > 0
    assert r.speedup == pytest.approx(r.full_s / r.incremental_s)
    assert r.max_difference < 1e-4
    text = format_live_result(r)
    assert "per new segment" in text and "8 backbone passes + 7 OFF pairs" in text


def test_incremental_path_does_one_backbone_pass_where_the_full_one_does_a_window():
    """What makes the incremental path cheaper, counted rather than timed (speed is the benchmark's job)."""
    from offnet.models import create_model
    from offnet.models.live import LiveScorer

    torch.manual_seed(0)
    model = create_model("off", num_classes=4, backbone="tiny").eval()
    frames: list[int] = []
    model.backbone.register_forward_hook(lambda _m, inputs, _out: frames.append(inputs[0].shape[0]))
    stream = torch.randn(1, 9, 3, 64, 64)  # (B, T, C, H, W)
    scorer = LiveScorer(model, window=8)
    with torch.no_grad():
        for t in range(8):
            scorer.push(stream[:, t])
        frames.clear()
        scorer.push(stream[:, 8])
        assert frames == [1]  # the new segment only
        frames.clear()
        model(stream[:, 1:9])
        assert sum(frames) == 8  # every segment of the window again


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
