"""offnet test under torchrun: each rank scores its shard, rank 0 gathers the scores in split order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import offnet
import offnet.engine.distributed as distributed
from offnet.data.synth import write_synthetic_dataset
from offnet.engine.checkpoint import save_checkpoint
from offnet.engine.evaluate import load_eval
from offnet.engine.scoring import score_checkpoint

torch.set_num_threads(1)

CLASSES = ["SlideRight", "SlideLeft"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = write_synthetic_dataset(tmp_path_factory.mktemp("data") / "synth", classes=CLASSES, videos_per_class=6,
                                   num_frames=16, progress=False)
    torch.manual_seed(0)
    model = offnet.create_model("off", num_classes=2, backbone="tiny")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".fc." in name:
                p.normal_(0.0, 0.05)
    path = tmp_path_factory.mktemp("run") / "run" / "stage3" / "best.pt"
    save_checkpoint(path, {"model_config": model.config, "model": model.state_dict(), "class_names": CLASSES,
                           "stage": 3, "step": 1, "config": {"data": {
                               "dataset": "ucf101", "root": str(root), "split": 1, "sampler": "off",
                               "test_segments": 3, "size": 56, "flip": False}}})
    return path


def _as_rank(monkeypatch, rank: int, world: int, others: dict[int, dict]) -> list[dict]:
    """The next score_checkpoint runs as ``rank``; ``others`` are the reports of the other ranks."""
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setattr(distributed, "init_distributed",
                        lambda *a, **k: distributed.DistContext(rank=rank, world_size=world))
    sent: list[dict] = []

    def gather(value, ctx):
        sent.append(value)
        return [value if r == rank else others[r] for r in range(world)]

    monkeypatch.setattr(distributed, "all_gather_objects", gather)
    return sent


def test_two_ranks_give_the_single_process_scores_in_the_same_order(run, tmp_path, monkeypatch):
    single = score_checkpoint(run, out=tmp_path / "single", workers=0, device="cpu", progress=False).result
    ok0 = {"rank": 0, "error": None, "result": None, "skipped": []}
    sent = _as_rank(monkeypatch, 1, 2, {0: ok0})
    assert score_checkpoint(run, out=tmp_path / "r1", workers=0, device="cpu", progress=False).result is None
    assert not (tmp_path / "r1").exists()  # only rank 0 writes
    rank1 = sent[0]
    assert len(single.names) >= 4 and list(rank1["result"].names) == list(single.names[1::2])
    _as_rank(monkeypatch, 0, 2, {1: rank1})
    gathered = score_checkpoint(run, out=tmp_path / "r0", workers=0, device="cpu", progress=False)
    assert gathered.result.names == single.names and gathered.result.meta["world_size"] == 2
    for level in single.scores:
        np.testing.assert_allclose(gathered.result.scores[level], single.scores[level], atol=1e-5)
    np.testing.assert_array_equal(gathered.result.labels, single.labels)
    assert load_eval(tmp_path / "r0").names == single.names


def test_an_error_on_another_rank_stops_every_rank(run, tmp_path, monkeypatch):
    failed = {"rank": 1, "error": "1 of 4 videos cannot be used: truncated: x.avi", "result": None, "skipped": []}
    _as_rank(monkeypatch, 0, 2, {1: failed})
    with pytest.raises(ValueError, match="rank 1: 1 of 4 videos cannot be used: truncated: x.avi"):
        score_checkpoint(run, out=tmp_path / "r0", workers=0, device="cpu", progress=False)
    assert not (tmp_path / "r0").exists()


@pytest.mark.slow
def test_offnet_test_under_torchrun(run, tmp_path):
    single = score_checkpoint(run, out=tmp_path / "single", workers=0, device="cpu", progress=False).result
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "offnet.cli",
           "test", str(run), "--out", str(tmp_path / "dist"), "--workers", "0", "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(f"scored {len(single.names)} test videos") == 1  # rank 0 alone prints and writes
    result = load_eval(tmp_path / "dist")
    assert result.names == single.names
    np.testing.assert_allclose(result.scores["off7"], single.scores["off7"], atol=1e-5)


def test_a_shard_of_only_bad_videos_is_listed_not_fatal_with_skip(run, tmp_path, monkeypatch):
    only_bad = {"rank": 1, "error": None, "result": None, "skipped": ["truncated: /x/v_a.avi: container declares 90"]}
    _as_rank(monkeypatch, 0, 2, {1: only_bad})
    scored = score_checkpoint(run, out=tmp_path / "r0", workers=0, device="cpu", progress=False, on_bad_video="skip")
    assert scored.result.meta["skipped_videos"] == only_bad["skipped"]
    assert len(scored.result.names) >= 2  # rank 0's own shard
