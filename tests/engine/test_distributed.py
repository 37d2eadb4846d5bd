"""The rank-sharded resumable sampler and DDP on two CPU processes (gloo) vs one process."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from offnet.engine.checkpoint import load_checkpoint
from offnet.engine.distributed import ResumableBatchSampler
from offnet.models import create_model

sys.path.insert(0, str(Path(__file__).parent))


def test_ranks_split_every_global_batch_of_the_single_process_order():
    single = list(ResumableBatchSampler(20, batch_size=4, seed=3))
    ranks = [list(ResumableBatchSampler(20, batch_size=2, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(single) == 5 and all(len(r) == 5 for r in ranks)
    for step, batch in enumerate(single):
        assert ranks[0][step] + ranks[1][step] == batch


def test_epochs_differ_and_order_depends_only_on_seed_and_epoch():
    a = ResumableBatchSampler(10, batch_size=5, seed=0)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert first != second
    assert sorted(sum(second, [])) == list(range(10))
    b = ResumableBatchSampler(10, batch_size=5, seed=0)
    b.set_epoch(1)
    assert list(b) == second


def test_start_batch_resumes_mid_epoch_and_incomplete_batch_is_dropped():
    s = ResumableBatchSampler(11, batch_size=3, seed=5)
    full = list(s)
    assert len(full) == 3  # 11 // 3, the last two indices wait for another epoch
    s.set_epoch(0, start_batch=2)
    assert list(s) == full[2:]
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableBatchSampler(3, batch_size=2, seed=0, world_size=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, run_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from conftest import make_clips, tiny_config

    from offnet.engine.trainer import TrainData, train

    config = tiny_config(train={"batch_size": 8 // world_size, "accum_steps": 1, "device": "cpu",
                                "checkpoint_every": 1, "val_every": 2, "log_every": 1, "tensorboard": False},
                         stage2={"lr": 0.05, "iterations": 4, "milestones": [3]})
    data = TrainData(train=make_clips(16, seed=1), val=make_clips(5, seed=2), class_names=["a", "b", "c"])
    train(config, run_dir=run_dir, data=data, progress=False)
    if world_size > 1:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_on_the_same_global_batch(tmp_path):
    # Stage 2 of OFF: every backbone BN is in eval mode and the sub-network has no BN; dropout is 0.
    # So each clip's gradient does not depend on which process computed it, and the mean of the two
    # ranks' mean gradients equals the mean over the global batch of 8.
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, start_method="spawn")
    _worker(0, 1, 0, str(tmp_path / "single"))
    ddp = load_checkpoint(tmp_path / "ddp" / "stage2" / "last.pt")
    single = load_checkpoint(tmp_path / "single" / "stage2" / "last.pt")
    assert ddp["step"] == single["step"] == 4
    torch.manual_seed(0)  # the trainer's initialisation (config seed 0)
    start = create_model("off", num_classes=3, backbone="tiny", dropout=0.0).state_dict()
    moved = 0
    for key, value in single["model"].items():
        # float summation order differs between one and two processes: ~1e-6 after 4 steps; a real
        # mismatch (gradients not averaged, a rank skipping a batch) moves weights by ~lr * grad >> 1e-5
        assert torch.allclose(ddp["model"][key], value, rtol=1e-5, atol=1e-5), key
        moved += int(not torch.allclose(start[key], value))
    assert moved > 10, "training must have changed the sub-network for the comparison to mean anything"
    assert ddp["best_metric"] == pytest.approx(single["best_metric"])  # sharded validation, same score
