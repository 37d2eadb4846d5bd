"""Fixed, parameter-free input stems that turn stacked frames into the network's input modality.

``rgbdiff`` (the authors' code): 6 frames ``(N, 18, H, W)`` → 5 consecutive differences
``(N, 15, H, W)``, channel layout ``[f2−f1 (3), f3−f2 (3), …, f6−f5 (3)]``.

``rawoff`` (the paper's Raw OFF, Sec. 3 and 5.2, OFF with f = identity on pixels): 5 frames
``(N, 15, H, W)`` → for each of the 4 consecutive pairs (k, k+1), per colour channel,
``[Sobel_x(f_k) (3), Sobel_y(f_k) (3), f_{k+1} − f_k (3)]``, stacked pair after pair:
``(N, 36, H, W)``. The paper gives no layout; this one is offnet's and is documented here.
Sobel responses are divided by 8 so that the spatial and temporal parts share a scale (a pixel
gradient of 1 per pixel gives 1, see :mod:`offnet.models.off`).
"""

from __future__ import annotations

import torch
from torch import nn

from .off import sobel_xy

__all__ = ["RGBDiffStem", "RawOFFStem", "make_stem"]


class RGBDiffStem(nn.Module):
    """``(N, 3·F, H, W)`` → ``(N, 3·(F−1), H, W)`` frame differences."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        frames = x.view(n, c // 3, 3, h, w)  # (N, F, 3, H, W)
        return (frames[:, 1:] - frames[:, :-1]).flatten(1, 2)  # (N, 3*(F-1), H, W)


class RawOFFStem(nn.Module):
    """``(N, 3·F, H, W)`` → ``(N, 9·(F−1), H, W)`` Raw OFF of every consecutive frame pair."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        f = c // 3
        frames = x.view(n, f, 3, h, w)  # (N, F, 3, H, W)
        earlier = frames[:, :-1].flatten(0, 1)  # (N*(F-1), 3, H, W)
        gx, gy = sobel_xy(earlier)
        dt = (frames[:, 1:] - frames[:, :-1]).flatten(0, 1)  # (N*(F-1), 3, H, W)
        out = torch.cat([gx / 8.0, gy / 8.0, dt], dim=1)  # (N*(F-1), 9, H, W)
        return out.view(n, 9 * (f - 1), h, w)


def make_stem(modality: str) -> nn.Module:
    """The stem for a modality name; identity for ``rgb`` and ``flow``."""
    if modality == "rgbdiff":
        return RGBDiffStem()
    if modality == "rawoff":
        return RawOFFStem()
    return nn.Identity()
