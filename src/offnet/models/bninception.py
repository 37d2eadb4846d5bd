"""BN-Inception as used by TSN and OFF (Ioffe & Szegedy 2015; spec Appendix A).

Parameter names follow the Caffe layer names with ``/`` replaced by ``_`` (``conv1_7x7_s2``,
``inception_3a_double_3x3_1_bn`` …), the naming of the widely used converted TSN / ImageNet
BN-Inception state dicts, so such a file loads as is. Pooling uses ceil mode throughout, as Caffe does.
Expected input: BGR, 0–255, minus [104, 117, 123] (:data:`~offnet.models.backbone.CAFFE_BGR_SPEC`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbone import CAFFE_BGR_SPEC, Backbone

__all__ = ["BNInception", "bninception", "INCEPTION_MODULES"]


@dataclass(frozen=True)
class _Module:
    """Branch widths of one inception module; 0 means the branch is absent."""

    name: str
    in_ch: int
    b1x1: int  # 1x1 branch
    b3_reduce: int  # 1x1 -> 3x3 branch
    b3: int
    d3_reduce: int  # 1x1 -> 3x3 -> 3x3 branch
    d3: int
    pool: str  # "avg" or "max"
    pool_proj: int  # 0: pooled input passes through (stride-2 modules)
    stride: int = 1

    @property
    def out_ch(self) -> int:
        return self.b1x1 + self.b3 + self.d3 + (self.pool_proj or self.in_ch)


INCEPTION_MODULES: tuple[_Module, ...] = (
    _Module("3a", 192, 64, 64, 64, 64, 96, "avg", 32),
    _Module("3b", 256, 64, 64, 96, 64, 96, "avg", 64),
    _Module("3c", 320, 0, 128, 160, 64, 96, "max", 0, stride=2),
    _Module("4a", 576, 224, 64, 96, 96, 128, "avg", 128),
    _Module("4b", 576, 192, 96, 128, 96, 128, "avg", 128),
    _Module("4c", 576, 160, 128, 160, 128, 160, "avg", 128),
    _Module("4d", 608, 96, 128, 192, 160, 192, "avg", 128),
    _Module("4e", 608, 0, 128, 192, 192, 256, "max", 0, stride=2),
    _Module("5a", 1056, 352, 192, 320, 160, 224, "avg", 128),
    _Module("5b", 1024, 352, 192, 320, 192, 224, "max", 128),
)


class BNInception(Backbone):
    """``(N, C, 224, 224)`` → taps ``inception_{3a,3b}`` @28, ``inception_{3c,4a,4b,4c,4d}`` @14,
    ``inception_{5a,5b}`` @7, and the final ``(N, 1024, 7, 7)`` map."""

    foldable_batchnorm = True

    def __init__(self, *, in_channels: int = 3) -> None:
        super().__init__()
        self._convs: list[str] = []
        self._add_conv_bn("conv1_7x7_s2", in_channels, 64, 7, stride=2, padding=3)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._add_conv_bn("conv2_3x3_reduce", 64, 64, 1)
        self._add_conv_bn("conv2_3x3", 64, 192, 3, padding=1)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for m in INCEPTION_MODULES:
            p = f"inception_{m.name}"
            if m.b1x1:
                self._add_conv_bn(f"{p}_1x1", m.in_ch, m.b1x1, 1)
            self._add_conv_bn(f"{p}_3x3_reduce", m.in_ch, m.b3_reduce, 1)
            self._add_conv_bn(f"{p}_3x3", m.b3_reduce, m.b3, 3, stride=m.stride, padding=1)
            self._add_conv_bn(f"{p}_double_3x3_reduce", m.in_ch, m.d3_reduce, 1)
            self._add_conv_bn(f"{p}_double_3x3_1", m.d3_reduce, m.d3, 3, padding=1)
            self._add_conv_bn(f"{p}_double_3x3_2", m.d3, m.d3, 3, stride=m.stride, padding=1)
            if m.pool_proj:
                self._add_conv_bn(f"{p}_pool_proj", m.in_ch, m.pool_proj, 1)
        self.tap_names = {
            28: ("inception_3a", "inception_3b"),
            14: ("inception_3c", "inception_4a", "inception_4b", "inception_4c", "inception_4d"),
            7: ("inception_5a", "inception_5b"),
        }
        out = {f"inception_{m.name}": m.out_ch for m in INCEPTION_MODULES}
        self.tap_channels = {n: out[n] for names in self.tap_names.values() for n in names}
        self.feature_dim = 1024
        self.input_spec = CAFFE_BGR_SPEC
        self.first_conv = "conv1_7x7_s2"
        self.relu = nn.ReLU(inplace=True)

    def _add_conv_bn(self, name: str, in_ch: int, out_ch: int, k: int, *, stride: int = 1,
                     padding: int = 0) -> None:
        self.add_module(name, nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=padding))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(out_ch, eps=1e-5))

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

    def _inception(self, m: _Module, x: torch.Tensor) -> torch.Tensor:
        p = f"inception_{m.name}"
        branches = []
        if m.b1x1:
            branches.append(self._cbr(f"{p}_1x1", x))
        branches.append(self._cbr(f"{p}_3x3", self._cbr(f"{p}_3x3_reduce", x)))
        d = self._cbr(f"{p}_double_3x3_1", self._cbr(f"{p}_double_3x3_reduce", x))
        branches.append(self._cbr(f"{p}_double_3x3_2", d))
        if m.pool == "avg":
            # Caffe AVE pooling divides by the full window, padding included.
            pooled = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        else:
            pad = 0 if m.stride == 2 else 1
            pooled = nn.functional.max_pool2d(x, 3, stride=m.stride, padding=pad, ceil_mode=True)
        branches.append(self._cbr(f"{p}_pool_proj", pooled) if m.pool_proj else pooled)
        return torch.cat(branches, dim=1)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = self.pool1_3x3_s2(self._cbr("conv1_7x7_s2", x))  # (N, 64, 56, 56)
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        x = self.pool2_3x3_s2(x)  # (N, 192, 28, 28)
        taps: dict[str, torch.Tensor] = {}
        for m in INCEPTION_MODULES:
            x = self._inception(m, x)
            taps[f"inception_{m.name}"] = x
        wanted = {n for names in self.tap_names.values() for n in names}
        return {k: v for k, v in taps.items() if k in wanted}, x


def bninception(*, in_channels: int = 3) -> BNInception:
    return BNInception(in_channels=in_channels)
