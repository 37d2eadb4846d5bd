"""``offnet bench pipelines``: the JSON a user compares with the paper's speed table (sizes: --quick)."""

from __future__ import annotations

import json

import pytest

from offnet.cli import main


def test_quick_report_has_every_field_the_table_needs(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "pipelines", "--quick", "--json", str(out),
                 "--pipelines", "tsn-rgb,off-rgb,off-rgb-official,rgb-full-stack,flow-tvl1"])
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("device", "precision", "bf16_supported", "peak_gflops", "pipelines", "segments_scaling", "ten_crop",
                "train_steps_per_s", "tvl1"):
        assert key in report
    assert report["precision"] == "fp32" and isinstance(report["bf16_supported"], bool) and report["peak_gflops"] > 0
    rows = report["pipelines"]
    assert set(rows) == {"tsn-rgb", "off-rgb", "off-rgb-official", "rgb-full-stack", "flow-tvl1"}
    for row in rows.values():
        assert set(row) >= {"clips_per_s", "frames_per_s", "gmacs_per_clip", "achieved_gflops", "ratio_to_tsn",
                            "peak_mem_mb"}
        assert row["clips_per_s"] > 0 and row["frames_per_s"] == pytest.approx(row["clips_per_s"] * 4)
        assert row["peak_mem_mb"] > 0
    assert rows["tsn-rgb"]["ratio_to_tsn"] == 1.0
    # the stack runs two OFF networks: its work is at least that of OFF(RGB), and TV-L1 dominates the flow row
    gmacs = {name: row["gmacs_per_clip"] for name, row in rows.items()}
    assert gmacs["rgb-full-stack"] > gmacs["off-rgb"] > gmacs["tsn-rgb"]
    assert rows["flow-tvl1"]["clips_per_s"] < rows["tsn-rgb"]["clips_per_s"]
    assert report["tvl1"]["fields_per_clip"] == 5 * 4 and report["tvl1"]["seconds_per_field"] > 0
    assert set(report["segments_scaling"]) == {"2", "4"}
    assert set(report["ten_crop"]) == {"tsn-rgb", "off-rgb", "off-rgb-official"}
    # networks that extend TSN carry their arithmetic bounds against it; the flow row (TV-L1 is not counted) none
    for name in ("tsn-rgb", "off-rgb", "off-rgb-official", "rgb-full-stack"):
        assert rows[name]["flop_ratio"] == pytest.approx(gmacs["tsn-rgb"] / gmacs[name])
        assert 0 < rows[name]["ratio_ceiling"] <= 1
    assert rows["tsn-rgb"]["ratio_ceiling"] == 1.0 and "flop_ratio" not in rows["flow-tvl1"]
    printed = capsys.readouterr().out
    assert "videos/s" in printed and "(ceiling): off-rgb " in printed


def test_ratio_bounds_arithmetic():
    """TSN 50 GMACs in 1 s; 25 GMACs more: at TSN's rate 2/3 of its speed, at a 100 GFLOP/s mm reference the extra
    takes 0.5 s, so 1 / 1.5 at most."""
    from offnet.tools.bench_pipelines import ratio_bounds

    bounds = ratio_bounds(1.0, 50.0, 75.0, 100.0, "fp32")
    assert bounds["flop_ratio"] == pytest.approx(2 / 3) and bounds["ratio_ceiling"] == pytest.approx(1 / 1.5)
    assert ratio_bounds(1.0, 50.0, 75.0, 100.0, "bf16")["ratio_ceiling"] is None  # the reference is fp32


@pytest.mark.parametrize(("argv", "message"), [
    (["--precision", "fp16"], "fp16 needs a CUDA device"),
    (["--pipelines", "off-rgb"], "must include tsn-rgb"),
    (["--pipelines", "tsn-rgb,i3d"], "must include tsn-rgb and come from"),
])
def test_bad_requests_are_one_line_errors(argv, message, capsys):
    assert main(["bench", "pipelines", "--quick", "--no-memory", "--no-ten-crop", *argv]) == 1
    assert message in capsys.readouterr().err


def test_peak_memory_is_the_probe_process_own_not_its_parent():
    """A child started by a large process must not report that process's peak (ru_maxrss survives exec)."""
    import torch

    from offnet.tools.bench_pipelines import _baseline_memory_mb, peak_rss_mb

    ballast = torch.ones(384 * 2**20 // 4)  # 384 MiB held by this (parent) process
    assert peak_rss_mb() > 384
    child = _baseline_memory_mb()
    assert child is not None and child < peak_rss_mb() - 300
    del ballast


def test_bf16_is_timed_against_fp32_in_the_same_run(tmp_path, capsys):
    """bf16 runs on any CPU (emulated where it is not native); the report says which, and the speed-up is measured
    side by side with fp32, never assumed."""
    out = tmp_path / "bench.json"
    assert main(["bench", "pipelines", "--quick", "--no-memory", "--no-ten-crop", "--precision", "bf16",
                 "--pipelines", "tsn-rgb,off-rgb", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["precision"] == "bf16" and isinstance(report["bf16_supported"], bool)
    for row in report["pipelines"].values():
        assert row["fp32_clips_per_s"] > 0
        assert row["speedup_vs_fp32"] == pytest.approx(row["clips_per_s"] / row["fp32_clips_per_s"])
    assert "bf16 against fp32 (same run): tsn-rgb" in capsys.readouterr().out


def test_compile_is_timed_against_the_plain_forward_in_the_same_run(tmp_path, capsys, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "compile", lambda model: calls.append(model) or model)  # no minutes of compiling
    out = tmp_path / "bench.json"
    assert main(["bench", "pipelines", "--quick", "--no-memory", "--no-ten-crop", "--compile",
                 "--pipelines", "tsn-rgb,off-rgb", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["compile"] is True and len(calls) == 2  # one network per pipeline, each compiled once
    for row in report["pipelines"].values():
        assert row["eager_clips_per_s"] > 0
        assert row["speedup_vs_eager"] == pytest.approx(row["clips_per_s"] / row["eager_clips_per_s"])
    assert "torch.compile against the plain forward (same run): tsn-rgb" in capsys.readouterr().out
