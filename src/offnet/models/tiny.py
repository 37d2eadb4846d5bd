"""A tiny BN-ReLU convolutional backbone for CPU tests and the demo.

Five stride-2 stages (3×3 convolutions), so its three tapped stages sit at strides 8, 16 and 32 like
BN-Inception's. About 0.3 M parameters; a 112 px frame costs ~0.03 GFLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import IMAGENET_SPEC, Backbone

__all__ = ["TinyBackbone", "tiny"]


def _conv_bn(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(Backbone):
    """``(N, C, H, W)`` → taps ``s8_0, s8_1`` (stride 8), ``s16_0, s16_1`` (16), ``s32_0, s32_1`` (32)."""

    subnet_defaults = (32, 0.25)

    def __init__(self, *, in_channels: int = 3, widths: tuple[int, ...] = (16, 24, 48, 96, 160)) -> None:
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.stem = nn.Sequential(_conv_bn(in_channels, w1, 2), _conv_bn(w1, w2, 2))  # stride 4
        self.stages = nn.ModuleDict()
        names: dict[int, tuple[str, ...]] = {}
        channels: dict[str, int] = {}
        prev = w2
        for scale, stride_name, width in ((28, "s8", w3), (14, "s16", w4), (7, "s32", w5)):
            self.stages[f"{stride_name}_0"] = _conv_bn(prev, width, 2)
            self.stages[f"{stride_name}_1"] = _conv_bn(width, width, 1)
            names[scale] = (f"{stride_name}_0", f"{stride_name}_1")
            channels.update({n: width for n in names[scale]})
            prev = width
        self.tap_names = names
        self.tap_channels = channels
        self.feature_dim = w5
        self.input_spec = IMAGENET_SPEC
        self.first_conv = "stem.0.0"

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = self.stem(x)
        taps: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            taps[name] = x
        return taps, x


def tiny(*, in_channels: int = 3) -> TinyBackbone:
    return TinyBackbone(in_channels=in_channels)
