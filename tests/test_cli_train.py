"""``offnet train`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from offnet.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "off_tiny_synth_rgb.yaml"


def test_print_config_resolves_overrides_in_any_position(capsys, tmp_path):
    code = main(["train", str(CONFIG), "--run-dir", str(tmp_path), "stage2.lr=0.5", "--print-config",
                 "data.flip=true"])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["stage2"]["lr"] == 0.5 and printed["data"]["flip"] is True
    assert printed["model"]["name"] == "off" and printed["stage1"]["iterations"] == 400


def test_print_config_shows_a_tsn_stage_one_and_off_stages_two_and_three(capsys):
    paper = CONFIG.with_name("off_bninception_ucf101_rgb.yaml")
    assert main(["train", str(paper), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["stage1"]["sampler"] == "tsn"  # still valid YAML
    assert "#   stage 1: sampler tsn, 3 segments (test 25), batch 32 x 8 accumulation, gradient clip 40" in out
    for stage in (2, 3):
        assert f"#   stage {stage}: sampler off, 7 segments (test 25), batch 16 x 8 accumulation" in out


def test_user_errors_are_one_line_messages(capsys, tmp_path):
    assert main(["train", str(CONFIG), "optim.lrr=1", "--print-config"]) == 1
    assert "unknown key optim.lrr" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    assert main(["train", "--resume", "--run-dir", str(tmp_path)]) == 1
    assert "config.yaml does not exist" in capsys.readouterr().err
    assert main(["train"]) == 1
    assert "give a config file" in capsys.readouterr().err


@pytest.mark.slow
def test_train_synthetic_end_to_end_then_resume(capsys, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(CONFIG), "--run-dir", str(run), "--no-progress", f"data.root={tmp_path / 'synth'}",
            "data.synth_videos_per_class=6", "data.synth_frames=16", "data.num_workers=0", "data.val_fraction=0.3",
            "stage1.iterations=3", "stage2.iterations=3", "stage3.iterations=2", "train.batch_size=4",
            "train.val_every=3",
            "train.checkpoint_every=2", "train.tensorboard=true"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "best validation accuracy" in out and str(run / "stage2") in out
    assert (run / "stage1" / "best.pt").is_file() and (run / "stage2" / "last.pt").is_file()
    assert any((run / "tb").iterdir())
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["stage2"]["iterations"] == 3 and saved["data"]["dataset"] == "synth"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {1, 2, 3}
    # a finished run resumed from its directory alone does no further work
    assert main(["train", "--resume", "--run-dir", str(run), "--no-progress"]) == 0
    assert len((run / "log.jsonl").read_text().splitlines()) == len(records)
