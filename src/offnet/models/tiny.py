"""A tiny BN-ReLU convolutional backbone for CPU tests and the demo (64–112 px inputs).

A stride-2 stem and three stages of two 3×3 convolutions, each stage starting with a stride-2 conv.
Its three tapped stages sit at strides 4, 8 and 16 — one octave finer than BN-Inception's 8/16/32 —
so that on the small inputs it is made for, the OFF units see maps of a useful size (16×16, 8×8 and
4×4 for a 64 px frame, where strides 8/16/32 would leave 8×8, 4×4 and 2×2). Motion of a few pixels
between segments stays within a cell or two at the finest tap, the regime where the OFF's
brightness-constancy terms carry the direction. About 0.2 M parameters; 0.01 GFLOPs per 64 px frame.
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
    """``(N, C, H, W)`` → taps ``s4_0, s4_1`` (stride 4), ``s8_0, s8_1`` (8), ``s16_0, s16_1`` (16)."""

    subnet_defaults = (32, 0.25)
    foldable_batchnorm = True

    def __init__(self, *, in_channels: int = 3, widths: tuple[int, int, int, int] = (16, 32, 64, 96)) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(_conv_bn(in_channels, w0, 2))  # stride 2
        self.stages = nn.ModuleDict()
        names: dict[int, tuple[str, ...]] = {}
        channels: dict[str, int] = {}
        prev = w0
        for scale, stride_name, width in ((28, "s4", w1), (14, "s8", w2), (7, "s16", w3)):
            self.stages[f"{stride_name}_0"] = _conv_bn(prev, width, 2)
            self.stages[f"{stride_name}_1"] = _conv_bn(width, width, 1)
            names[scale] = (f"{stride_name}_0", f"{stride_name}_1")
            channels.update({n: width for n in names[scale]})
            prev = width
        self.tap_names = names
        self.tap_channels = channels
        self.feature_dim = w3
        self.input_spec = IMAGENET_SPEC
        self.first_conv = "stem.0.0"

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = self.stem(x)  # (N, w0, H/2, W/2)
        taps: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            taps[name] = x
        return taps, x


def tiny(*, in_channels: int = 3) -> TinyBackbone:
    return TinyBackbone(in_channels=in_channels)
