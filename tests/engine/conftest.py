"""Shared fixtures of the engine tests: a tiny config and in-memory clip datasets."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from offnet.config import Config
from offnet.engine.trainer import TrainData

torch.set_num_threads(1)

NUM_CLASSES = 3
SIZE = 64
T = 3


def tiny_config(**overrides) -> Config:
    """A tiny OFF model (tiny backbone, no dropout) trained for a few steps on the CPU."""
    data = {
        "name": "tiny",
        "seed": 0,
        "stages": [2],
        # stage 2 alone on a random backbone: refused unless asked for, which these fast tests do
        "model": {"name": "off", "backbone": "tiny", "dropout": 0.0, "allow_untrained_frozen_backbone": True},
        "data": {"dataset": "folder", "num_segments": T, "size": SIZE, "num_workers": 0},
        "train": {"batch_size": 4, "device": "cpu", "checkpoint_every": 1, "val_every": 2, "log_every": 1,
                  "tensorboard": False},
        "stage1": {"lr": 0.01, "iterations": 3, "milestones": []},
        "stage2": {"lr": 0.01, "iterations": 3, "milestones": [2]},
        "stage3": {"lr": 0.001, "iterations": 2, "schedule": "cosine"},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    return Config.from_dict(data)


def make_clips(n: int, *, seed: int, num_classes: int = NUM_CLASSES) -> TensorDataset:
    """``n`` random clips ``(T, 3, SIZE, SIZE)`` whose label shifts the mean (learnable)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    clips = torch.randn(n, T, 3, SIZE, SIZE, generator=g) * 0.5 + labels.view(n, 1, 1, 1, 1).float()
    return TensorDataset(clips, labels)


@pytest.fixture
def tiny_data() -> TrainData:
    return TrainData(
        train=make_clips(16, seed=1), val=make_clips(6, seed=2), class_names=["a", "b", "c"],
        names=[f"video{i}" for i in range(16)],
    )
