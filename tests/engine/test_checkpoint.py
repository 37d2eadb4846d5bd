"""Atomic checkpoint writes, safe loads, locating checkpoints and rebuilding models."""

from __future__ import annotations

import argparse
import os

import pytest
import torch

import offnet.engine.checkpoint as ckpt
from offnet.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    build_model_from_checkpoint,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from offnet.models import create_model


def _payload(value: float = 1.0) -> dict:
    return {"model_config": {"name": "x"}, "model": {"w": torch.full((3,), value)}, "class_names": ["a"],
            "rng": {"python": [3, [1, 2, 2**40], None]}, "best_metric": None, "step": 7}


def test_round_trip_plain_containers(tmp_path):
    save_checkpoint(tmp_path / "a.pt", _payload())
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert loaded["format"] == CHECKPOINT_FORMAT
    assert torch.equal(loaded["model"]["w"], torch.ones(3))
    assert loaded["rng"]["python"][1][2] == 2**40 and loaded["step"] == 7


def test_failed_write_keeps_the_last_good_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _payload(1.0))

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _payload(2.0))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_checkpoint(tmp_path / "nothere.pt")


@pytest.mark.parametrize("cut", [0, 10, 200])
def test_truncated_file_is_a_value_error(tmp_path, cut):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="is not a valid offnet checkpoint"):
        load_checkpoint(path)


def test_foreign_files_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected a dict with keys"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": "v0", "model_config": {}, "model": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="format 'v0'"):
        load_checkpoint(tmp_path / "old.pt")


def test_pickled_objects_are_refused(tmp_path):
    # weights_only loading must refuse arbitrary classes (here a harmless one)
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": {}, "model": argparse.Namespace(a=1)},
               tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a valid offnet checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_find_checkpoint_prefers_final_stage_and_best(tmp_path):
    for stage, names in ((1, ("best.pt", "last.pt")), (2, ("last.pt",)), (10, ())):
        (tmp_path / f"stage{stage}").mkdir()
        for name in names:
            save_checkpoint(tmp_path / f"stage{stage}" / name, _payload())
    assert find_checkpoint(tmp_path) == tmp_path / "stage2" / "last.pt"
    save_checkpoint(tmp_path / "stage2" / "best.pt", _payload())
    assert find_checkpoint(tmp_path) == tmp_path / "stage2" / "best.pt"
    assert find_checkpoint(tmp_path / "stage1") == tmp_path / "stage1" / "best.pt"
    assert find_checkpoint(tmp_path / "stage1" / "last.pt") == tmp_path / "stage1" / "last.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        find_checkpoint(tmp_path / "empty")


def test_build_model_from_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_model("off", num_classes=3, backbone="tiny", dropout=0.0)
    save_checkpoint(tmp_path / "stage2" / "last.pt", {
        "model_config": model.config, "model": model.state_dict(), "class_names": ["a", "b", "c"], "stage": 2,
    })
    rebuilt, payload = build_model_from_checkpoint(tmp_path)
    assert not rebuilt.training and payload["class_names"] == ["a", "b", "c"]
    x = torch.randn(1, 3, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x)["off7"], model(x)["off7"])
