"""Stage plumbing: losses per level, where a stage starts, its length; the train/val hold-out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from offnet.config import StageConfig
from offnet.data.records import VideoRecord
from offnet.engine.checkpoint import save_checkpoint
from offnet.engine.datasets import split_train_val
from offnet.engine.stages import init_checkpoint, stage_loss, stage_status, stage_total_steps


def test_stage_loss_is_the_weighted_sum_of_cross_entropies():
    g = torch.Generator().manual_seed(0)
    out = {k: torch.randn(4, 3, generator=g) for k in ("rgb", "off28", "off14", "off7")}
    labels = torch.tensor([0, 1, 2, 0])
    total, per = stage_loss(out, labels, levels=("off28", "off14", "off7"), weights={"off7": 2.0})
    expected = F.cross_entropy(out["off28"], labels) + F.cross_entropy(out["off14"], labels) + 2 * F.cross_entropy(
        out["off7"], labels)
    assert torch.allclose(total, expected) and set(per) == {"off28", "off14", "off7"}
    with pytest.raises(ValueError, match="unknown level"):
        stage_loss(out, labels, levels=("rgb",), weights={"off5": 1.0})


def test_next_stage_starts_from_best_then_last(tmp_path):
    assert init_checkpoint(tmp_path, 1, [1, 2, 3]) is None
    with pytest.raises(FileNotFoundError, match="stage 2 starts from stage 1"):
        init_checkpoint(tmp_path, 2, [1, 2, 3])
    payload = {"model_config": {}, "model": {}}
    save_checkpoint(tmp_path / "stage1" / "last.pt", payload)
    assert init_checkpoint(tmp_path, 2, [1, 2, 3]) == tmp_path / "stage1" / "last.pt"
    save_checkpoint(tmp_path / "stage1" / "best.pt", payload)
    assert init_checkpoint(tmp_path, 2, [1, 2, 3]) == tmp_path / "stage1" / "best.pt"
    assert init_checkpoint(tmp_path, 3, [1, 3]) == tmp_path / "stage1" / "best.pt"
    assert stage_status(tmp_path, 1) == "partial" and stage_status(tmp_path, 2) == "new"
    (tmp_path / "stage1" / "DONE").write_text("")
    assert stage_status(tmp_path, 1) == "done"


@pytest.mark.parametrize(("iterations", "epochs", "per_epoch", "expected"),
                         [(100, None, 7, 100), (100, 2.0, 7, 14), (None, 0.5, 7, 4), (None, 0.01, 7, 1)])
def test_stage_length(iterations, epochs, per_epoch, expected):
    stage = StageConfig(iterations=iterations, epochs=epochs)
    assert stage_total_steps(stage, steps_per_epoch=per_epoch) == expected


def _ucf_records(classes: int = 3, groups: int = 5, clips: int = 3) -> list[VideoRecord]:
    return [
        VideoRecord(path=Path(f"/d/C{c}/v_C{c}_g{g:02d}_c{k:02d}.avi"), label=c, source=f"trainlist01.txt:{i}")
        for i, (c, g, k) in enumerate((c, g, k) for c in range(classes) for g in range(1, groups + 1)
                                      for k in range(1, clips + 1))
    ]


def test_holdout_keeps_groups_together_and_is_deterministic():
    records = _ucf_records()
    train, val = split_train_val(records, fraction=0.2, seed=0)
    assert len(train) + len(val) == len(records) and not set(train) & set(val)
    group = lambda r: (r.label, r.name.split("_")[2])  # noqa: E731
    assert not {group(r) for r in train} & {group(r) for r in val}  # no group on both sides
    assert {r.label for r in val} == {0, 1, 2}  # every class is represented
    assert all(len([r for r in val if r.label == c]) == 3 for c in range(3))  # 20% of 15 = 3 = one group
    assert split_train_val(records, fraction=0.2, seed=0) == (train, val)
    assert split_train_val(records, fraction=0.2, seed=1) != (train, val)
    assert split_train_val(records, fraction=0.0, seed=0) == (records, [])
    assert [r for r in records if r in train] == train  # input order kept


def test_holdout_without_groups_and_single_video_classes():
    records = [VideoRecord(path=Path(f"/d/x{i}.mp4"), label=i % 2) for i in range(10)]
    records.append(VideoRecord(path=Path("/d/lonely.mp4"), label=2))
    train, val = split_train_val(records, fraction=0.3, seed=0)
    assert len([r for r in val if r.label == 0]) == 2 and len([r for r in val if r.label == 1]) == 2
    assert records[-1] in train  # a one-video class cannot give it away
    with pytest.raises(ValueError, match="val fraction"):
        split_train_val(records, fraction=1.0, seed=0)


def test_focal_loss_shifts_weight_to_the_examples_still_wrong():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.5]])  # first example confidently right, second wrong
    labels = torch.tensor([0, 0])
    plain, _ = stage_loss({"off7": logits}, labels, levels=("off7",), weights={})
    assert plain == pytest.approx(F.cross_entropy(logits, labels).item())
    same, _ = stage_loss({"off7": logits}, labels, levels=("off7",), weights={}, focal_gamma=0.0)
    assert same == plain
    focal, _ = stage_loss({"off7": logits}, labels, levels=("off7",), weights={}, focal_gamma=2.0)
    ce = F.cross_entropy(logits, labels, reduction="none")
    p = torch.softmax(logits, 1)[:, 0]
    assert focal.item() == pytest.approx(((1 - p) ** 2 * ce).mean().item())
    # the right example keeps (1 - 0.98)^2 of its loss, the wrong one (1 - 0.38)^2: the gradient goes to it
    assert (1 - p[0]) ** 2 < 0.001 < (1 - p[1]) ** 2
