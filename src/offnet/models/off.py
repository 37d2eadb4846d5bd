"""The OFF operator: spatial gradients and temporal difference of feature maps (paper Sec. 3, Eq. 5–7).

For a feature sequence ``f_1 … f_T`` the operator yields, for every consecutive pair (t, t+1),

    OFF_t = [ F_x(f_t), F_y(f_t), f_{t+1} − f_t ]

where ``F_x``/``F_y`` are fixed per-channel Sobel filters taken on the *earlier* feature of the pair
(as the authors' code). Two modes:

``paper`` (default)
    a learned 1×1 conv + ReLU reduces the tap to ``reduce_channels`` (128) → ``g``; the output is
    ``[Sobel_x(g_t)/8, Sobel_y(g_t)/8, g_{t+1} − g_t]``: ``3 × reduce_channels`` channels. Two choices
    the paper leaves open are made here (our departures): the Sobel responses are
    divided by 8, their gain on a ramp, so all three parts are derivatives in the same units (raw Sobel
    outweighs the temporal difference 10–20× on small motions and the sub-network first learns to ignore
    it); and the map border is replicate-padded, since zero padding turns the reduced feature's positive
    offset into spurious edges along the border, which on 4×4–7×7 maps is most of the map.
``official``
    what the authors' code runs: temporal part as above; the spatial part is a *separate* 1×1 conv to
    32 channels (no ReLU) filtered by one fixed depthwise kernel ``[[0,1,0],[-1,0,1],[0,-1,0]]``
    (x plus y central differences), then dropout 0.8: ``32 + reduce_channels`` channels (160).

``spatial=False`` keeps only the temporal difference (the code's flow / RGB-diff OFF nets).
``replicate_official_misalignment`` reproduces the code's training-time bug: the spatial
part of pair ``j`` is taken from row ``j`` of the flat video-major batch instead of frame t of the
same video. For exact-reproduction ablations only; it acts in training mode only, since the authors'
test is aligned (and at test time crops of one video share a forward pass).

Sign and axis convention (pinned by a test on translated textures): with image rows growing
downwards, ``Sobel_x ≈ 8 ∂f/∂x`` (x to the right) and ``Sobel_y ≈ −8 ∂f/∂row`` (the paper's kernel,
y pointing up). Brightness constancy then reads ``F_t ≈ −(v_x F_x + v_y F_y) / 8`` for a motion of
``(v_x, v_y)`` pixels per frame, x right and y up; in the paper mode's normalised output (Sobel ÷ 8)
simply ``F_t ≈ −(v_x F_x + v_y F_y)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OFFOperator", "sobel_xy", "central_difference", "temporal_difference", "SOBEL_X", "SOBEL_Y"]

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
#: The authors' "sobel" filler: x plus y central differences, no smoothing.
OFFICIAL_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


PADDINGS = ("zeros", "replicate")


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Apply one 3×3 kernel to every channel of ``x (N, C, H, W)``; ``padding`` is zeros or replicate."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    c = x.shape[1]
    weight = kernel.to(dtype=x.dtype, device=x.device).expand(c, 1, 3, 3)  # (C, 1, 3, 3)
    if padding == "replicate":
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=c)
    return F.conv2d(x, weight, padding=1, groups=c)


def sobel_xy(x: torch.Tensor, *, padding: str = "zeros", scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel Sobel x and y of ``x (N, C, H, W)`` → two ``(N, C, H, W)`` maps (paper Eq. 5–6), times
    ``scale`` (applied to the kernels: for a power of two such as 1/8 the result and its gradient are exactly
    the scaled ones). Each kernel pads for itself: padding once for both changes the gradient's rounding, and
    training is sensitive to that (see the README's note on run-to-run spread)."""
    return _depthwise(x, SOBEL_X * scale, padding), _depthwise(x, SOBEL_Y * scale, padding)


def central_difference(x: torch.Tensor) -> torch.Tensor:
    """The authors' combined kernel on every channel of ``x (N, C, H, W)``."""
    return _depthwise(x, OFFICIAL_KERNEL)


def temporal_difference(x: torch.Tensor) -> torch.Tensor:
    """``x (B, T, C, H, W)`` → ``(B, T−1, C, H, W)`` with row t = x_{t+1} − x_t (paper Eq. 7)."""
    return x[:, 1:] - x[:, :-1]


class OFFOperator(nn.Module):
    """OFF on a sequence of feature maps: ``(B, T, C, H, W)`` → ``(B, T−1, out_channels, H, W)``.

    Usable on any feature-map sequence (one instance per tapped layer). See the module docstring for
    the modes. ``out_channels`` is 3·R (paper), 32 + R (official) or R (``spatial=False``).
    """

    def __init__(self, *, in_channels: int, reduce_channels: int = 128, mode: str = "paper",
                 spatial: bool = True, official_spatial_channels: int = 32,
                 official_spatial_dropout: float = 0.8, replicate_official_misalignment: bool = False) -> None:
        super().__init__()
        if mode not in ("paper", "official"):
            raise ValueError(f"OFF mode must be 'paper' or 'official', got {mode!r}")
        self.mode = mode
        self.spatial = spatial
        self.replicate_official_misalignment = replicate_official_misalignment
        self.reduce = nn.Conv2d(in_channels, reduce_channels, 1)
        if spatial and mode == "official":
            self.spatial_reduce = nn.Conv2d(in_channels, official_spatial_channels, 1)
            self.spatial_dropout = nn.Dropout(official_spatial_dropout)
            self.out_channels = official_spatial_channels + reduce_channels
        else:
            self.out_channels = (3 if spatial else 1) * reduce_channels

    def _earlier(self, x: torch.Tensor) -> torch.Tensor:
        """The earlier frame of each pair, ``(B, T, C, H, W)`` → ``(B*(T−1), C, H, W)``."""
        b, t = x.shape[:2]
        if self.replicate_official_misalignment and self.training:
            return x.flatten(0, 1)[: b * (t - 1)]  # first B*(T-1) rows of the video-major batch
        return x[:, :-1].flatten(0, 1)  # (B*(T-1), C, H, W)

    def segment_state(self, feat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What one segment contributes to the pairs it is part of, ``feat (N, C, H, W)`` → ``(g, [s])``:
        the reduced feature ``g`` (``(N, R, H, W)``) and, in official mode, the spatial projection ``s``.

        :meth:`pair` of two states equals :meth:`forward`'s output for that pair (eval mode), so a live
        scorer computes each state once and keeps it for the next pair (:mod:`offnet.models.live`)."""
        g = F.relu(self.reduce(feat))  # (N, R, H, W)
        if self.spatial and self.mode == "official":
            return g, self.spatial_reduce(feat)  # (N, 32, H, W), no ReLU as in the code
        return (g,)

    def pair(self, earlier: tuple[torch.Tensor, ...], later: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """OFF of one segment pair from two :meth:`segment_state` results → ``(N, out_channels, H, W)``."""
        ft = later[0] - earlier[0]  # (N, R, H, W), Eq. 7
        if not self.spatial:
            return ft
        if self.mode == "paper":
            fx, fy = sobel_xy(earlier[0], padding="replicate", scale=1 / 8)
            return torch.cat([fx, fy, ft], dim=1)
        return torch.cat([self.spatial_dropout(central_difference(earlier[1])), ft], dim=1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = feat.shape
        out = torch.cat(self.parts(feat), dim=1)  # (B*(T-1), P, H, W)
        return out.view(b, t - 1, -1, h, w)

    def parts(self, feat: torch.Tensor) -> list[torch.Tensor]:
        """The output's channel groups before concatenation, ``feat (B, T, C, H, W)`` → ``[(B*(T−1), P_i, H, W)]``
        (spatial parts, then the temporal difference), so a consumer that concatenates more can do it once."""
        b, t, c, h, w = feat.shape
        if t < 2:
            raise ValueError(f"OFF needs at least 2 segments per clip, got T={t}")
        g = F.relu(self.reduce(feat.flatten(0, 1)))  # (B*T, R, H, W)
        g = g.view(b, t, -1, h, w)  # (B, T, R, H, W)
        ft = temporal_difference(g).flatten(0, 1)  # (B*(T-1), R, H, W)
        if not self.spatial:
            return [ft]
        if self.mode == "paper":
            # Sobel / 8: derivatives in the units of ft (module docstring)
            fx, fy = sobel_xy(self._earlier(g), padding="replicate", scale=1 / 8)
            return [fx, fy, ft]
        s = self.spatial_reduce(self._earlier(feat))  # no ReLU, as in the code
        return [self.spatial_dropout(central_difference(s)), ft]
