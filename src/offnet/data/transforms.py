"""Thin callable group transforms over :mod:`offnet.data.functional`, and :func:`build_transform`.

Every transform is called as ``t(x, rng)`` with ``x`` a clip tensor and ``rng`` a
``numpy.random.Generator`` (used by the random ones, ignored by the others). One random draw is made per
call, i.e. per clip, and applied identically to all its frames.

The composed pipeline takes the decoded clip ``(N, H, W, C)`` uint8 numpy (N frames, C = 3 RGB or 2 flow)
and returns a float32 tensor ``(N, C, size, size)``, or ``(crops, N, C, size, size)`` when ``crops > 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from offnet.data import functional as TF
from offnet.modalities import get_modality

__all__ = [
    "ClipTransform",
    "Compose",
    "ToTensor",
    "ResizeShorter",
    "MultiScaleCrop",
    "Resize",
    "RandomHorizontalFlip",
    "CenterCrop",
    "ThreeCrop",
    "MirrorCrop",
    "TenCrop",
    "Normalize",
    "build_transform",
]

ClipTransform = Callable[[object, "np.random.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, passing the same ``rng`` to each."""

    transforms: Sequence[Callable]

    def __call__(self, x, rng: np.random.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, rng)
        return x


@dataclass(frozen=True)
class ToTensor:
    """``(N, H, W, C)`` uint8 numpy -> ``(N, C, H, W)`` uint8 tensor."""

    def __call__(self, clip: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.clip_to_tensor(clip)


@dataclass(frozen=True, kw_only=True)
class ResizeShorter:
    """Resize ``(N, C, H, W)`` so that the shorter side is ``size`` (float output)."""

    size: int

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.resize_shorter(x, self.size)


@dataclass(frozen=True, kw_only=True)
class Resize:
    """Resize ``(N, C, H, W)`` to ``size x size`` (float output)."""

    size: int

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.resize(x, (self.size, self.size))


def _need_rng(rng: np.random.Generator | None, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{name} is random: pass a numpy.random.Generator")
    return rng


@dataclass(frozen=True, kw_only=True)
class MultiScaleCrop:
    """TSN multi-scale crop of ``(N, C, H, W)`` then bilinear resize to ``size x size``.

    One crop ``(top, left, h, w)`` per clip (:func:`functional.multi_scale_crop_params`).
    """

    size: int
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    more_fix_crop: bool = True

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        H, W = x.shape[-2:]
        top, left, h, w = TF.multi_scale_crop_params(
            H,
            W,
            output_size=self.size,
            scales=self.scales,
            rng=_need_rng(rng, "MultiScaleCrop"),
            max_distort=self.max_distort,
            more_fix_crop=self.more_fix_crop,
        )
        return TF.resize(TF.crop(x, top, left, h, w), (self.size, self.size))


@dataclass(frozen=True, kw_only=True)
class RandomHorizontalFlip:
    """Mirror the whole clip with probability ``p``; ``flow`` also inverts x (``255 - x``)."""

    flow: bool
    p: float = 0.5

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if _need_rng(rng, "RandomHorizontalFlip").random() < self.p:
            return TF.hflip(x, flow=self.flow)
        return x


@dataclass(frozen=True, kw_only=True)
class CenterCrop:
    """Central ``size x size`` crop."""

    size: int

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.center_crop(x, self.size)


@dataclass(frozen=True, kw_only=True)
class ThreeCrop:
    """``(N, C, H, W)`` -> ``(3, N, C, s, s)`` along the longer side."""

    size: int

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.three_crop(x, self.size)


@dataclass(frozen=True, kw_only=True)
class MirrorCrop:
    """``(N, C, H, W)`` -> ``(2, N, C, s, s)``: the centre crop and its mirror image (flow: x inverted)."""

    size: int
    flow: bool

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.mirror_crop(x, self.size, flow=self.flow)


@dataclass(frozen=True, kw_only=True)
class TenCrop:
    """``(N, C, H, W)`` -> ``(10, N, C, s, s)``: corners, centre and their mirrors (flow: x inverted)."""

    size: int
    flow: bool

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.ten_crop(x, self.size, flow=self.flow)


@dataclass(frozen=True, kw_only=True)
class Normalize:
    """Per-channel ``(x - mean) / std`` on 0–255 input (see :func:`functional.normalize`)."""

    mean: tuple[float, ...]
    std: tuple[float, ...] = field(default=(1.0,))
    bgr: bool = False
    scale255: bool = True

    def __call__(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return TF.normalize(x, self.mean, self.std, bgr=self.bgr, scale255=self.scale255)


def build_transform(
    *,
    train: bool,
    size: int,
    modality: str,
    mean: Sequence[float],
    std: Sequence[float],
    bgr: bool,
    scale255: bool,
    flip: bool,
    crops: int = 1,
    scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
    resize_to: int | None = None,
) -> Compose:
    """The clip pipeline: ``(N, H, W, C)`` uint8 numpy -> float tensor ``(N, C, size, size)``.

    Train: [resize shorter side to ``resize_to``] -> multi-scale crop (``scales``; the authors use
    ``(1, .875, .75)`` for flow) resized to ``size`` -> random flip (if ``flip``; turn it off for
    direction-sensitive classes) -> normalise. Test: [resize shorter side] -> 1 centre crop, 2 (the
    centre and its mirror), 3 crops or 10 crops (then ``(crops, N, C, size, size)``; 2 and 10 crops
    include mirrors, so they are refused when ``flip=False``; a flip label map is applied to the mirrored
    crops' scores by :func:`offnet.engine.evaluate.score_clips`) -> normalise.

    ``mean`` / ``std`` are in the model's channel order and range: BGR 0–255 (Caffe BN-Inception,
    ``bgr=True, scale255=True``, mean ``[104, 117, 123]``, std ``[1]``) or RGB 0–1 (ImageNet,
    ``scale255=False``). Flow ignores ``bgr``; its mean is usually ``[128]`` with ``scale255=True``.
    """
    kind = get_modality(modality).kind
    is_flow = kind == "flow"
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}")
    if crops not in TF.MIRRORED_CROPS:
        raise ValueError(f"test crops must be one of {list(TF.MIRRORED_CROPS)}; got {crops}")
    if train and crops != 1:
        raise ValueError(f"training uses one random crop per clip; got crops={crops}")
    if TF.MIRRORED_CROPS[crops] and not flip:
        raise ValueError(
            f"{crops}-crop testing includes mirrored crops, and this run does not flip (data.flip=false: "
            "direction-sensitive classes without a flip label map); use crops=1 or 3, or train with "
            "data.flip_map naming each class's mirror image"
        )
    steps: list[Callable] = [ToTensor()]
    if resize_to is not None:
        steps.append(ResizeShorter(size=resize_to))
    if train:
        steps.append(MultiScaleCrop(size=size, scales=tuple(scales)))
        if flip:
            steps.append(RandomHorizontalFlip(flow=is_flow))
    elif crops == 1:
        steps.append(CenterCrop(size=size))
    elif crops == 2:
        steps.append(MirrorCrop(size=size, flow=is_flow))
    elif crops == 3:
        steps.append(ThreeCrop(size=size))
    else:
        steps.append(TenCrop(size=size, flow=is_flow))
    steps.append(Normalize(mean=tuple(mean), std=tuple(std), bgr=bgr and not is_flow, scale255=scale255))
    return Compose(steps)
