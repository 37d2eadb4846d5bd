"""ResNet-18 and ResNet-50 (He et al. 2016) with torchvision's parameter names.

A torchvision ImageNet checkpoint (``resnet18-*.pth`` …) therefore loads as is (its ``fc`` keys are
reported as unexpected: offnet's heads live outside the backbone). Taps (our decision: the last block
outputs of each stage, in order): ResNet-18 uses every block of ``layer2``/``layer3``/``layer4``;
ResNet-50 uses ``layer2.{2,3}``, ``layer3.{1..5}`` and ``layer4.{1,2}`` — two / five / two taps, the
same grouping as BN-Inception's 3a–3b / 3c–4d / 5a–5b.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import IMAGENET_SPEC, Backbone

__all__ = ["ResNet", "resnet18", "resnet50"]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)  # stride on 3x3 (v1.5)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(Backbone):
    """``(N, C, H, W)`` → taps ``layerK.i`` at strides 8/16/32 and the final ``layer4`` map."""

    foldable_batchnorm = True

    def __init__(self, *, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 taps: dict[int, tuple[str, ...]], in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        for i, (n_blocks, width) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
            stride = 1 if i == 1 else 2
            blocks = []
            for b in range(n_blocks):
                blocks.append(block(in_ch, width, stride if b == 0 else 1))
                in_ch = width * block.expansion
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.tap_names = taps
        stage_out = {f"layer{i}": w * block.expansion for i, w in enumerate((64, 128, 256, 512), start=1)}
        self.tap_channels = {t: stage_out[t.split(".")[0]] for names in taps.values() for t in names}
        self.feature_dim = 512 * block.expansion
        self.input_spec = IMAGENET_SPEC
        self.first_conv = "conv1"

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        wanted = set(self.all_taps)
        taps: dict[str, torch.Tensor] = {}
        for i in range(1, 5):
            for j, blk in enumerate(getattr(self, f"layer{i}")):
                x = blk(x)
                if f"layer{i}.{j}" in wanted:
                    taps[f"layer{i}.{j}"] = x
        return taps, x


def resnet18(*, in_channels: int = 3) -> ResNet:
    taps = {28: ("layer2.0", "layer2.1"), 14: ("layer3.0", "layer3.1"), 7: ("layer4.0", "layer4.1")}
    return ResNet(block=BasicBlock, layers=(2, 2, 2, 2), taps=taps, in_channels=in_channels)


def resnet50(*, in_channels: int = 3) -> ResNet:
    taps = {
        28: ("layer2.2", "layer2.3"),
        14: ("layer3.1", "layer3.2", "layer3.3", "layer3.4", "layer3.5"),
        7: ("layer4.1", "layer4.2"),
    }
    return ResNet(block=Bottleneck, layers=(3, 4, 6, 3), taps=taps, in_channels=in_channels)
