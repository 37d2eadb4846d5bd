"""Pure tensor functions for group (clip-level) augmentation, the TSN / OFF way.

A clip is a tensor ``(N, C, H, W)``: N frames (all segments' frames in order), C = 3 for colour frames
or 2 for flow (x, y). Multi-crop functions add a leading crop axis: ``(K, N, C, h, w)``. Every function
applies the same geometry to all frames, so one random draw per clip keeps the frames aligned (the OFF
temporal difference is taken between them).

Values stay in the 0–255 range until :func:`normalize`; flow is quantised flow with 128 = zero motion,
so a horizontal flip also negates the x component: ``x -> 255 - x`` (channel 0 of each frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "clip_to_tensor",
    "crop",
    "resize",
    "resize_shorter",
    "center_crop",
    "hflip",
    "multi_scale_crop_params",
    "fixed_crop_offsets",
    "three_crop",
    "ten_crop",
    "mirror_crop",
    "MIRRORED_CROPS",
    "normalize",
]


def clip_to_tensor(clip: np.ndarray) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 numpy -> ``(N, C, H, W)`` uint8 tensor (no copy of the values' scale)."""
    if clip.ndim != 4:
        raise ValueError(f"expected a clip (N, H, W, C); got an array of shape {tuple(clip.shape)}")
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)  # (N, C, H, W)


def crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """``(..., H, W)`` -> ``(..., height, width)`` starting at ``(top, left)``."""
    H, W = x.shape[-2:]
    if top < 0 or left < 0 or top + height > H or left + width > W:
        raise ValueError(f"crop ({top}, {left}, {height}, {width}) does not fit a {H}x{W} frame")
    return x[..., top : top + height, left : left + width]


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (as OpenCV ``INTER_LINEAR``, no antialias) of ``(N, C, H, W)`` to ``size = (h, w)``.

    Returns float32 values in the input's range; a no-op size returns the input as float.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    lead = x.shape[:-3]
    flat = x.float().reshape(-1, *x.shape[-3:])  # (prod(lead), C, H, W)
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-3:])  # (..., C, h, w)


def resize_shorter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio. ``(N, C, H, W)`` float."""
    H, W = x.shape[-2:]
    if H <= W:
        new = (size, max(1, round(W * size / H)))
    else:
        new = (max(1, round(H * size / W)), size)
    return resize(x, new)


def center_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The central ``size`` crop of ``(..., H, W)``."""
    h, w = (size, size) if isinstance(size, int) else size
    H, W = x.shape[-2:]
    if h > H or w > W:
        raise ValueError(f"centre crop {h}x{w} is larger than the {H}x{W} frame; resize first (resize_to)")
    return crop(x, (H - h) // 2, (W - w) // 2, h, w)


def hflip(x: torch.Tensor, *, flow: bool) -> torch.Tensor:
    """Mirror ``(..., C, H, W)`` left-right; for flow (values 0–255) also invert x: ``x -> 255 - x``.

    Flow channels are ``(x, y)`` per frame, so x is channel 0 of the ``C = 2`` axis.
    """
    out = x.flip(-1)
    if flow:
        if out.shape[-3] != 2:
            raise ValueError(f"flow flip expects C = 2 channels (x, y); got C = {out.shape[-3]}")
        out = out.clone()
        out[..., 0, :, :] = 255 - out[..., 0, :, :]
    return out


def fixed_crop_offsets(
    height: int, width: int, crop_h: int, crop_w: int, *, more_fix_crop: bool = True
) -> list[tuple[int, int]]:
    """TSN's fixed crop positions ``(top, left)`` on a 4x4 grid: 5, or 13 with ``more_fix_crop``.

    Corners and centre; with ``more_fix_crop`` also the 4 edge centres and the 4 quarter points.
    """
    hs, ws = (height - crop_h) // 4, (width - crop_w) // 4
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
    if more_fix_crop:
        grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    return [(i * hs, j * ws) for i, j in grid]


def multi_scale_crop_params(
    height: int,
    width: int,
    *,
    output_size: int,
    scales: Sequence[float],
    rng: np.random.Generator,
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tuple[int, int, int, int]:
    """Draw TSN's multi-scale crop ``(top, left, h, w)`` for an ``height x width`` frame.

    Side candidates are ``int(min(H, W) · s)`` for ``s`` in ``scales``, snapped to ``output_size`` when within
    3 px. ``(h, w)`` is drawn uniformly among candidate pairs whose scale indices differ by at most
    ``max_distort`` (10 pairs for 4 scales, 7 for 3), the position uniformly among
    :func:`fixed_crop_offsets`. 256x340 frames, 4 scales: sides {256, 224, 192, 168}.
    """
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    sizes = [output_size if abs(s - output_size) < 3 else s for s in sizes]
    pairs = [
        (h, w)
        for i, h in enumerate(sizes)
        for j, w in enumerate(sizes)
        if abs(i - j) <= max_distort and h <= height and w <= width
    ]
    if not pairs:
        raise ValueError(f"no crop of scales {list(scales)} fits a {height}x{width} frame")
    h, w = pairs[int(rng.integers(len(pairs)))]
    offsets = fixed_crop_offsets(height, width, h, w, more_fix_crop=more_fix_crop)
    top, left = offsets[int(rng.integers(len(offsets)))]
    return top, left, h, w


def _corner_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    H, W = x.shape[-2:]
    if size > H or size > W:
        raise ValueError(f"crop {size} is larger than the {H}x{W} frame; resize first (resize_to)")
    positions = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]
    return [crop(x, t, l, size, size) for t, l in positions]


def ten_crop(x: torch.Tensor, size: int, *, flow: bool) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(10, N, C, size, size)``: 4 corners, centre, then their mirrors (flow: x inverted).

    The order is the authors' ``oversample``: (0, 0), (0, W-s), (H-s, 0), (H-s, W-s), centre; 5–9 mirrored.
    """
    crops = _corner_crops(x, size)
    crops += [hflip(c, flow=flow) for c in crops]
    return torch.stack(crops)  # (10, N, C, s, s)


def mirror_crop(x: torch.Tensor, size: int, *, flow: bool) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(2, N, C, size, size)``: the centre crop and its mirror image (flow: x inverted)."""
    centre = center_crop(x, size)
    return torch.stack([centre, hflip(centre, flow=flow)])


#: crop count -> positions of the mirrored crops in :func:`ten_crop` / :func:`mirror_crop` order
MIRRORED_CROPS: dict[int, tuple[int, ...]] = {1: (), 2: (1,), 3: (), 10: (5, 6, 7, 8, 9)}


def three_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(3, N, C, size, size)``: start, centre and end of the longer side.

    With the shorter side already ``size`` (``resize_shorter``) the three squares cover the whole frame.
    """
    H, W = x.shape[-2:]
    if size > H or size > W:
        raise ValueError(f"crop {size} is larger than the {H}x{W} frame; resize first (resize_to)")
    if W >= H:
        cy = (H - size) // 2
        crops = [crop(x, cy, left, size, size) for left in (0, (W - size) // 2, W - size)]
    else:
        cx = (W - size) // 2
        crops = [crop(x, top, cx, size, size) for top in (0, (H - size) // 2, H - size)]
    return torch.stack(crops)  # (3, N, C, s, s)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    bgr: bool = False,
    scale255: bool = True,
) -> torch.Tensor:
    """``(..., C, H, W)`` 0–255 values -> ``(x' - mean) / std`` per channel, float32.

    ``x'`` is ``x`` in 0–255 when ``scale255`` (Caffe BN-Inception: BGR, mean [104, 117, 123], std 1),
    else ``x / 255`` (ImageNet: RGB, mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]). ``bgr``
    reverses the channel order first (the input is RGB); ``mean`` / ``std`` are given in the model's
    order. One value broadcasts over all channels (flow: mean 128, std 1 -> zero motion is 0).
    """
    x = x.float()
    C = x.shape[-3]
    if bgr:
        x = x.flip(-3)
    if not scale255:
        x = x / 255.0
    m = torch.as_tensor(list(mean), dtype=torch.float32)
    s = torch.as_tensor(list(std), dtype=torch.float32)
    for name, v in (("mean", m), ("std", s)):
        if v.numel() not in (1, C):
            raise ValueError(f"{name} has {v.numel()} values; expected 1 or C = {C} (one per channel)")
    if (s == 0).any():
        raise ValueError(f"std must be non-zero; got {list(std)}")
    return (x - m.view(-1, 1, 1)) / s.view(-1, 1, 1)
