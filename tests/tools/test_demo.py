"""`offnet demo --quick` end to end: the files it writes and the table's columns (not the accuracies)."""

import json

import pytest

from offnet.cli import main
from offnet.tools.predict import Predictor

METHODS = ["tsn-rgb", "hypnet-rgb", "off-rgb", "tsn+off-rgb", "off-rawoff", "tsn-flow"]


@pytest.mark.slow
def test_demo_quick_writes_results_table_plots_and_usable_checkpoints(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for column in ("method", "top-1", "mean cls", "rev. pairs", "clips/s", "frames/s"):
        assert column in printed
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "offnet-synth" and results["wall_s"] > 0
    assert [r["method"] for r in results["rows"]] == METHODS
    for row in results["rows"]:
        assert 0.0 <= row["top1"] <= 1.0 and 0.0 <= row["mean_class_acc"] <= 1.0
        assert 0.0 <= row["pair_acc"] <= 1.0  # the quick set has one reversed pair
        assert row["clips_per_s"] > 0 and row["frames_per_s"] > 0
        assert row["method"] in printed
    for key in ("plot", "visualization"):
        assert open(results["files"][key], "rb").read(4) == b"\x89PNG"
    for path in results["files"]["confusion"].values():
        assert open(path, "rb").read(4) == b"\x89PNG"
    assert set(results["checkpoints"]) == set(METHODS) - {"tsn+off-rgb"}
    # the checkpoints are ordinary offnet checkpoints: predict accepts them
    video = next((out / "data").rglob("*.avi"))
    predictor = Predictor(results["checkpoints"]["off-rgb"])
    (pred,) = predictor.predict([video])
    assert set(pred.levels) == {"rgb", "off28", "off14", "off7"}
    # a second run reuses the generated dataset
    data_dirs = sorted(p.name for p in (out / "data").iterdir())
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--no-flow"]) == 0
    assert sorted(p.name for p in (out / "data").iterdir()) == data_dirs
