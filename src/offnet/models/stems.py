"""Fixed, parameter-free input stems that turn stacked frames into the network's input modality.

``rgbdiff`` (the authors' code): 6 frames ``(N, 18, H, W)`` → 5 consecutive differences
``(N, 15, H, W)``, channel layout ``[f2−f1 (3), f3−f2 (3), …, f6−f5 (3)]``.

``rawoff`` (the paper's Raw OFF, Sec. 3 and 5.2, OFF with f = identity on pixels): 5 frames
``(N, 15, H, W)`` → for each of the 4 consecutive pairs (k, k+1), per colour channel,
``[Sobel_x(f_k) (3), Sobel_y(f_k) (3), f_{k+1} − f_k (3)]``, stacked pair after pair:
``(N, 36, H, W)``. The paper gives no layout; this one is offnet's and is documented here.
Sobel responses are divided by 8 so that the spatial and temporal parts share a scale (a pixel
gradient of 1 per pixel gives 1, see :mod:`offnet.models.off`).

The Raw OFF stem is linear, so it runs as one convolution with a fixed, mostly zero 3×3 kernel from the
``3·F`` input channels to the ``9·(F−1)`` output channels (zero padding, as the per-channel Sobel filters).
On a CPU that is several times faster than per-channel filters on three channels at a time
(25 segments at 224 px: about 0.1 against 0.5 s), and its output comes in the layout of the weights
(channels-last in optimised inference), so the first backbone convolution reads it without a reorder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .off import SOBEL_X, SOBEL_Y

__all__ = ["RGBDiffStem", "RawOFFStem", "make_stem", "raw_off_kernel"]


class RGBDiffStem(nn.Module):
    """``(N, 3·F, H, W)`` → ``(N, 3·(F−1), H, W)`` frame differences."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        frames = x.view(n, c // 3, 3, h, w)  # (N, F, 3, H, W)
        return (frames[:, 1:] - frames[:, :-1]).flatten(1, 2)  # (N, 3*(F-1), H, W)


def raw_off_kernel(frames: int) -> torch.Tensor:
    """The Raw OFF stem as one conv weight ``(9·(F−1), 3·F, 3, 3)``: output channel ``9k + j`` of pair ``(k, k+1)``
    is Sobel_x / 8 (j = 0–2), Sobel_y / 8 (j = 3–5) of frame k's colour ``j mod 3``, or frame k+1 minus frame k
    (j = 6–8, the centre tap)."""
    if frames < 2:
        raise ValueError(f"Raw OFF needs at least 2 frames per segment, got {frames}")
    weight = torch.zeros(9 * (frames - 1), 3 * frames, 3, 3)
    for k in range(frames - 1):
        for c in range(3):
            earlier, later = 3 * k + c, 3 * (k + 1) + c
            weight[9 * k + c, earlier] = SOBEL_X / 8
            weight[9 * k + 3 + c, earlier] = SOBEL_Y / 8
            weight[9 * k + 6 + c, later, 1, 1] = 1.0
            weight[9 * k + 6 + c, earlier, 1, 1] = -1.0
    return weight


class RawOFFStem(nn.Module):
    """``(N, 3·F, H, W)`` → ``(N, 9·(F−1), H, W)`` Raw OFF of every consecutive frame pair (one fixed conv)."""

    def __init__(self, frames: int = 5) -> None:
        super().__init__()
        # not saved: a fixed function of ``frames``, so checkpoints stay as they were
        self.register_buffer("weight", raw_off_kernel(frames), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"the Raw OFF stem expects {self.weight.shape[1]} channels ({self.weight.shape[1] // 3} "
                             f"frames x 3), got {x.shape[1]}")
        return F.conv2d(x, self.weight.to(x.dtype), padding=1)


def make_stem(modality: str) -> nn.Module:
    """The stem for a modality name; identity for ``rgb`` and ``flow``."""
    if modality == "rgbdiff":
        return RGBDiffStem()
    if modality == "rawoff":
        from ..modalities import get_modality

        return RawOFFStem(frames=get_modality(modality).frames_per_segment)
    return nn.Identity()
