"""Sizes of a CPU training recipe derived from the data, not from constants fitted to one benchmark.

:func:`probe_dataset` reads the facts that matter from a dataset in UCF-101 layout (frame size, video
lengths, number of training videos and classes); :func:`input_size` and :func:`iterations` turn them
into the network input side, the resize that keeps train and test crops at one pixel scale, and a
number of optimiser steps. :func:`measure_motion` estimates how fast things move in the videos (optical
flow on a sample of frame pairs) and :func:`off_interval` turns that into the OFF sampler's interval: the
number of frames over which moving things travel a set distance at the network input, whatever the
videos' frame rate, length or speed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataFacts", "probe_dataset", "input_size", "iterations", "measure_motion", "video_speeds", "off_interval",
           "finest_tap_stride", "CROP_SCALE", "TARGET_CELLS"]

#: Training crops take this fraction of the (resized) shorter side; test crops are centred crops of
#: the same side, so both see objects at the same size in pixels.
CROP_SCALE = 0.875

#: What moves should travel this many cells of the finest OFF tap between two segments, one cell of the middle
#: tap (see :func:`off_interval`).
TARGET_CELLS = 2.0


@dataclass(frozen=True)
class DataFacts:
    """What a recipe needs to know about a dataset."""

    num_classes: int
    train_videos: int
    frame_width: int
    frame_height: int
    median_frames: int
    min_frames: int
    class_names: tuple[str, ...] = ()

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
    records = _nonempty(list(train.records), root, split)
    lengths, sizes = [], []
    for record in _sample(records, sample):
        lengths.append(count_frames(record.path))
        frame = read_frames(record.path, [0])[0]  # (H, W, 3)
        sizes.append(frame.shape[:2])
    height, width = statistics.median_low(sizes)
    return DataFacts(num_classes=len(train.class_names), train_videos=len(records), frame_width=int(width),
                     frame_height=int(height), median_frames=int(statistics.median_low(lengths)),
                     min_frames=int(min(lengths)), class_names=tuple(train.class_names))


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


def _nonempty(records: list, root: str | Path, split: int) -> list:
    if not records:
        raise ValueError(f"{root}: the split-{split} training list is empty")
    return records


def _sample(records: list, sample: int) -> list:
    """Up to ``sample`` of ``records``, spread evenly over the list."""
    step = max(1, len(records) // sample)
    return records[::step][:sample]


def measure_motion(root: str | Path, *, short_side: int, split: int = 1, sample: int = 16, pairs: int = 3,
                   percentile: float = 90.0) -> float:
    """How fast things move in the dataset at ``root``: pixels per frame at frames resized to ``short_side``.

    The median over the videos of :func:`video_speeds` (same arguments). Returns 0.0 where nothing moves.
    """
    return float(statistics.median(video_speeds(root, short_side=short_side, split=split, sample=sample,
                                                pairs=pairs, percentile=percentile)))


def video_speeds(root: str | Path, *, short_side: int, split: int = 1, sample: int = 16, pairs: int = 3,
                 percentile: float = 90.0) -> list[float]:
    """How fast things move in each of up to ``sample`` training videos of the dataset at ``root`` (spread over
    the list): pixels per frame at frames resized to ``short_side``.

    Farneback optical flow between ``pairs`` consecutive frames spread over each video. A frame pair's motion
    is the ``percentile`` of its flow magnitudes (what moves, not the still background), a video's the median
    of its pairs; 0.0 where nothing moves.
    """
    import cv2
    import numpy as np

    from ..data.datasets import load_split
    from ..data.decode import count_frames, read_frames
    from ..data.flow import compute_flow

    if short_side < 1 or sample < 1 or pairs < 1:
        raise ValueError(f"need a positive short side, sample and pairs; got {short_side}, {sample}, {pairs}")
    records = _nonempty(list(load_split("ucf101", root, split=split, subset="train").records), root, split)
    speeds = []
    for record in _sample(records, sample):
        length = count_frames(record.path)
        if length < 2:
            continue
        starts = sorted(set(np.linspace(0, length - 2, pairs + 2)[1:-1].round().astype(int).tolist()))
        wanted = sorted(set(starts) | {t + 1 for t in starts})
        frames = dict(zip(wanted, read_frames(record.path, wanted)))  # (H, W, 3) uint8 each
        per_pair = []
        for t in starts:
            a, b = (cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY) for i in (t, t + 1))
            scale = short_side / min(a.shape)
            if scale != 1.0:
                a, b = (cv2.resize(x, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for x in (a, b))
            flow = compute_flow(a, b, algorithm="farneback")  # (H, W, 2)
            per_pair.append(float(np.percentile(np.hypot(flow[..., 0], flow[..., 1]), percentile)))
        speeds.append(statistics.median(per_pair))
    if not speeds:
        raise ValueError(f"{root}: no training video of split {split} has 2 frames to measure motion on")
    return speeds


def off_interval(speed: float, *, stride: int, min_frames: int, segments: int,
                 target_cells: float = TARGET_CELLS) -> int:
    """Frames between OFF segments so that what moves at ``speed`` px/frame (at the network input) travels
    ``target_cells`` cells of the finest OFF tap (``stride`` px of input per cell) between two segments.

    The OFF operator compares a feature map's temporal difference with its spatial gradients. At two cells of
    the finest tap, the middle tap (twice the stride) sees one cell, where its gradient still explains the
    difference, the finest tap large, clear differences and the coarsest half a cell. Measured on the motion
    benchmark: 2-2.5 cells (4-5 frames) 82.5-83.3 %, 1 cell 12 points lower (at 16 passes); on periodic
    textures, 2.5 cells came close to half their period and aliased (the actions benchmark: 94.8 % at 5 frames,
    100 % at 4). The interval is at least 1 and at most what lets ``segments`` segments fit in the shortest
    video (``min_frames``); nothing moving gives that maximum. For example 2 px/frame, stride 4: 4 frames.
    """
    if stride < 1 or min_frames < 1 or segments < 1 or target_cells <= 0 or speed < 0:
        raise ValueError(f"off_interval needs positive stride, frames, segments and target and a speed >= 0; got "
                         f"{stride}, {min_frames}, {segments}, {target_cells}, {speed}")
    longest = max(1, (min_frames - 1) // max(1, segments - 1))
    if speed <= 0:
        return longest
    return int(min(longest, max(1, round(target_cells * stride / speed))))


def finest_tap_stride(backbone: str, size: int) -> int:
    """Input pixels per cell of ``backbone``'s finest OFF tap at ``size`` px input (a forward of zeros).

    The tiny backbone: 4; BN-Inception and ResNets: 8.
    """
    import torch

    from ..models._registry import build_backbone

    net, _ = build_backbone(backbone, in_channels=3)
    with torch.no_grad():
        taps, _ = net.eval()(torch.zeros(1, 3, size, size))
    finest = max(int(taps[name].shape[-1]) for names in net.tap_names.values() for name in names)
    return max(1, round(size / finest))
