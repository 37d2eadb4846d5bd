"""`offnet demo --quick` end to end: the files it writes and the table's columns (not the accuracies)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from offnet.cli import main
from offnet.engine.evaluate import load_eval
from offnet.tools.predict import Predictor

MOTION = ["tsn-rgb", "hypnet-rgb", "off-rgb", "tsn+off-rgb", "tsn-rawoff", "tsn-flow"]
ACTIONS = ["tsn-rgb", "off-rgb", "tsn+off-rgb", "tsn-flow"]


@pytest.mark.slow
def test_demo_quick_writes_results_table_plots_and_usable_checkpoints(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--flow"]) == 0
    printed = capsys.readouterr().out
    for column in ("method", "top-1", "mean cls", "rev. pairs", "videos/s", "frames/s"):
        assert column in printed
    results = json.loads((out / "results.json").read_text())
    assert results["wall_s"] > 0
    assert [b["dataset"] for b in results["benchmarks"]] == ["offnet-motion", "offnet-synth"]
    motion, actions = results["benchmarks"]
    assert [r["method"] for r in motion["rows"]] == MOTION
    assert [r["method"] for r in actions["rows"]] == ACTIONS
    # sizes derived from the data: 64x48 motion frames -> 40 px input (cap 48) from 46 px frames
    assert motion["data_facts"]["frame_width"] == 64 and motion["data_facts"]["frame_height"] == 48
    assert motion["recipe"]["input_size"] == 40 and motion["recipe"]["resize_to"] == 46
    assert actions["recipe"]["input_size"] == 48
    # the OFF interval from the measured motion: 64x48 frames at 1.5-3 x 64/160 px per frame, resized to 46 px
    # (0.5-1.1 px per frame), would cover 8 px (2 cells of the stride-4 tap) in 7 or more frames; 3 training
    # segments fit in 16 frames at 7; 8 test segments do not, so fewer
    speed, interval = motion["recipe"]["motion_px_per_frame"], motion["recipe"]["interval"]
    assert 0.3 <= speed <= 1.3 and interval == min(15 // 2, round(8 / speed)), motion["recipe"]
    assert motion["recipe"]["test_segments"] == min(8, 15 // interval + 1)
    for bench in results["benchmarks"]:
        assert bench["dataset"] in printed
        for row in bench["rows"]:
            assert 0.0 <= row["top1"] <= 1.0 and 0.0 <= row["mean_class_acc"] <= 1.0
            assert 0.0 <= row["pair_acc"] <= 1.0  # each quick set has one reversed pair
            assert row["clips_per_s"] > 0 and row["frames_per_s"] > 0
            assert row["method"] in printed
        for key in ("plot", "visualization"):
            assert open(bench["files"][key], "rb").read(4) == b"\x89PNG"
        for path in bench["files"]["confusion"].values():
            assert open(path, "rb").read(4) == b"\x89PNG"
        assert set(bench["checkpoints"]) == {r["method"] for r in bench["rows"]} - {"tsn+off-rgb"}
        # both benchmarks pair mirrored classes by name: centre crop and mirror, the mirror under the flip map
        assert bench["recipe"]["flip_map"] == "auto" and bench["recipe"]["test_crops"] == 2
        off_test = load_eval(Path(bench["files"]["confusion"]["off-rgb"]).parent)
        assert off_test.meta["crops"] == 2 and off_test.meta["mirror_labels"] is not None
        # OFF(RGB) scores as the sum of its off14 and off7 heads; the fusion row is one system: the OFF network's
        # own rgb + off14 + off7 scores, and off-rgb's speed
        ev = load_eval(Path(bench["files"]["confusion"]["off-rgb"]).parent)
        off = ev.scores["off14"].astype(np.float64) + ev.scores["off7"]
        fused = ev.scores["rgb"] + off
        row = {r["method"]: r for r in bench["rows"]}
        assert row["off-rgb"]["top1"] == pytest.approx(float(np.mean(off.argmax(1) == ev.labels)))
        assert row["tsn+off-rgb"]["top1"] == pytest.approx(float(np.mean(fused.argmax(1) == ev.labels)))
        assert row["tsn+off-rgb"]["clips_per_s"] == row["off-rgb"]["clips_per_s"]
    # the checkpoints are ordinary offnet checkpoints: predict accepts them
    video = next((out / "data").rglob("*.avi"))
    predictor = Predictor(actions["checkpoints"]["off-rgb"])
    (pred,) = predictor.predict([video])
    assert set(pred.levels) == {"rgb", "off28", "off14", "off7"}
    # a second run reuses the generated datasets; --benchmarks picks one; --jobs 2 trains in two processes
    data_dirs = sorted(p.name for p in (out / "data").iterdir())
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--benchmarks", "motion", "--jobs", "2",
                 "--precision", "bf16"]) == 0
    assert sorted(p.name for p in (out / "data").iterdir()) == data_dirs
    again = json.loads((out / "results.json").read_text())
    assert [b["dataset"] for b in again["benchmarks"]] == ["offnet-motion"]
    assert [r["method"] for r in again["benchmarks"][0]["rows"]] == MOTION[:-1]  # flow is opt-in
    # the trainings ran in the precision asked for: fp32 by default, bf16 autocast here
    assert motion["settings"]["precision"] == "fp32"
    assert yaml.safe_load((out / "motion/runs/off-rgb/config.yaml").read_text())["train"]["amp"] == "bf16"


def test_demo_precision_resolves_to_a_training_autocast():
    from offnet.engine.evaluate import bf16_supported
    from offnet.tools.demo import training_amp

    assert training_amp("auto") == ("bf16" if bf16_supported("cpu") else "none")
    assert (training_amp("fp32"), training_amp("bf16")) == ("none", "bf16")
    with pytest.raises(ValueError, match="auto, bf16 or fp32"):
        training_amp("fp16")


def test_demo_loads_clips_in_the_training_process_when_each_training_has_one_core(monkeypatch):
    import dataclasses

    from offnet.tools import demo

    monkeypatch.setattr(demo.os, "cpu_count", lambda: 2)
    s = demo.FULL
    assert s.num_workers is None
    assert demo.threads_per_job(2) == 1
    assert demo.loader_workers(dataclasses.replace(s, jobs=2)) == 0  # one core each: no worker processes
    assert demo.loader_workers(dataclasses.replace(s, jobs=1)) == 2  # two cores for one training
    assert demo.loader_workers(dataclasses.replace(s, jobs=2, num_workers=3)) == 3  # an explicit count wins
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 16)
    assert demo.loader_workers(dataclasses.replace(s, jobs=2)) == 2


def test_demo_rejects_unknown_benchmark(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--benchmarks", "motion,nope"]) != 0
    assert "--benchmarks" in capsys.readouterr().err


def test_demo_without_an_off_model_writes_its_table_and_no_visualization(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--benchmarks", "motion",
                 "--methods", "tsn-rawoff"]) == 0
    (bench,) = json.loads((out / "results.json").read_text())["benchmarks"]
    assert [r["method"] for r in bench["rows"]] == ["tsn-rawoff"] and "visualization" not in bench["files"]


def test_demo_rejects_unknown_method_before_any_work(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--methods", "off-rgb,i3d"]) != 0
    err = capsys.readouterr().err
    assert "unknown or no demo method(s) ['i3d']" in err and "off-rgb" in err
    assert not out.exists()


def test_with_methods_sets_every_benchmark_and_flow():
    from offnet.tools.demo import FULL, with_methods

    s = with_methods(FULL, ["off-rgb", "tsn-rgb", "off-rgb"])
    assert s.motion_methods == s.actions_methods == s.data_methods == ("off-rgb", "tsn-rgb")
    assert not s.flow
    s = with_methods(FULL, ["tsn-flow", "off-rgb"])
    assert s.flow and s.data_methods == ("off-rgb",)

