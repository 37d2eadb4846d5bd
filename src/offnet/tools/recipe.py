"""Sizes of a CPU training recipe derived from the data, not from constants fitted to one benchmark.

:func:`probe_dataset` reads the facts that matter from a dataset in UCF-101 layout (frame size, video
lengths, number of training videos and classes); :func:`input_size` and :func:`iterations` turn them
into the network input side, the resize that keeps train and test crops at one pixel scale, and a
number of optimiser steps. The OFF sampler's interval already follows each video's length
(``L // test_segments``), so it needs no setting here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataFacts", "probe_dataset", "input_size", "iterations", "CROP_SCALE"]

#: Training crops take this fraction of the (resized) shorter side; test crops are centred crops of
#: the same side, so both see objects at the same size in pixels.
CROP_SCALE = 0.875


@dataclass(frozen=True)
class DataFacts:
    """What a recipe needs to know about a dataset."""

    num_classes: int
    train_videos: int
    frame_width: int
    frame_height: int
    median_frames: int
    min_frames: int

    @property
    def short_side(self) -> int:
        return min(self.frame_width, self.frame_height)


def probe_dataset(root: str | Path, *, split: int = 1, sample: int = 24) -> DataFacts:
    """Facts about the UCF-101-layout dataset at ``root`` (split ``split``).

    Frame size and length come from up to ``sample`` training videos spread over the list (frame
    counts are read from the container, the size from one decoded frame). A video that cannot be read
    raises :class:`~offnet.data.decode.VideoDecodeError` naming it.
    """
    from ..data.datasets import load_split
    from ..data.decode import count_frames, read_frames

    train = load_split("ucf101", root, split=split, subset="train")
    records = list(train.records)
    if not records:
        raise ValueError(f"{root}: the split-{split} training list is empty")
    step = max(1, len(records) // sample)
    chosen = records[::step][:sample]
    lengths, sizes = [], []
    for record in chosen:
        lengths.append(count_frames(record.path))
        frame = read_frames(record.path, [0])[0]  # (H, W, 3)
        sizes.append(frame.shape[:2])
    height, width = statistics.median_low(sizes)
    return DataFacts(num_classes=len(train.class_names), train_videos=len(records), frame_width=int(width),
                     frame_height=int(height), median_frames=int(statistics.median_low(lengths)),
                     min_frames=int(min(lengths)))


def input_size(short_side: int, *, cap: int = 112, multiple: int = 8) -> tuple[int, int]:
    """``(size, resize_to)``: the network input side and the shorter side to resize frames to.

    The input is the largest multiple of ``multiple`` within :data:`CROP_SCALE` of the shorter side,
    at most ``cap`` (the CPU budget); frames are resized so that this input is exactly a
    :data:`CROP_SCALE` crop. 64 px frames give 56 px inputs at full resolution; 120 px frames 104 px;
    anything from 128 px up 112 px inputs from frames resized to 128 px.
    """
    if short_side < 16:
        raise ValueError(f"frames of {short_side} px are too small for the network (need >= 16 px)")
    size = min(cap, max(multiple, int(short_side * CROP_SCALE) // multiple * multiple))
    return size, round(size / CROP_SCALE)


def iterations(train_videos: int, *, epochs: float, batch_size: int, minimum: int = 1) -> int:
    """Optimiser steps for ``epochs`` passes over ``train_videos`` clips in batches of ``batch_size``."""
    if train_videos < 1 or batch_size < 1 or epochs <= 0:
        raise ValueError(f"need positive videos, batch size and epochs; got {train_videos}, {batch_size}, {epochs}")
    return max(minimum, math.ceil(epochs * train_videos / batch_size))
