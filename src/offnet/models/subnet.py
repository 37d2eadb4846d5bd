"""The OFF sub-network: three units of residual bottleneck blocks at the 28/14/7 scales, plus heads.

Layer plan (widths for ``width = 1``; every conv has a bias, there is no BatchNorm):

======  ==============================================  =====================  ==============
unit    input (P = channels per tap)                    transition             blocks → output
======  ==============================================  =====================  ==============
28      cat(taps@28) = 2P                               7×7/2 → 64 (28 → 14)   3 × (64, 256) → 256
14      cat(taps@14, unit-28 out) = 5P + 256            5×5/2 → 128 (14 → 7)   2 × (128, 512) → 512
7       cat(taps@7, unit-14 out) = 2P + 512             3×3/1 → 256            1 × (256, 1024) → 1024
======  ==============================================  =====================  ==============

The first block of each unit has a 1×1 projection shortcut. Two quirks of the authors' network are
kept: block 14b ends with a 3×3 conv instead of 1×1, and unit 7 has no ReLU after its add.
``block14b_kernel=1`` drops the first quirk: with an adaptive optimiser (AdamW at 1e-3, the CPU recipe)
the 3×3 conv's nine-fold fan-in makes its updates nine times larger and unit 14 dies within a few
hundred steps (its positive activations fall from half to a tenth, and its head predicts one class).
``norm=True`` adds a BatchNorm after each unit's transition conv, for sub-networks trained from scratch
together with a from-scratch backbone.
Heads: unit 28 max-pools 3×3/2 (ceil mode) first; every head then global-average-pools,
applies dropout and a linear classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bottleneck", "OFFUnit", "LevelHead", "OFFSubnet", "init_msra"]


def init_msra(module: nn.Module, *, bias: float = 0.2) -> None:
    """Caffe "msra" init (He normal, fan-in) and constant bias, as the authors' OFF layers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            nn.init.normal_(m.weight, std=math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → (1×1 | 3×3) residual block, ReLU between; ``(N, in, H, W)`` → ``(N, out, H, W)``."""

    def __init__(self, *, in_channels: int, mid_channels: int, out_channels: int, last_kernel: int = 1,
                 projection: bool = False, final_relu: bool = True) -> None:
        super().__init__()
        if not projection and in_channels != out_channels:
            raise ValueError(f"identity shortcut needs in == out channels, got {in_channels} and {out_channels}")
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, last_kernel, padding=last_kernel // 2)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if projection else nn.Identity()
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        out = out + self.shortcut(x)
        return F.relu(out) if self.final_relu else out


class OFFUnit(nn.Module):
    """Transition conv + ReLU, then residual blocks: ``(N, in, H, W)`` → ``(N, out, H', W')``."""

    def __init__(self, *, in_channels: int, trans_channels: int, trans_kernel: int, trans_stride: int,
                 out_channels: int, num_blocks: int, last_kernels: Sequence[int] | None = None,
                 final_relu: bool = True, norm: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.transition = nn.Conv2d(in_channels, trans_channels, trans_kernel, stride=trans_stride,
                                    padding=trans_kernel // 2)
        self.norm = nn.BatchNorm2d(trans_channels) if norm else nn.Identity()
        kernels = list(last_kernels or [1] * num_blocks)
        blocks = []
        for i in range(num_blocks):
            blocks.append(Bottleneck(
                in_channels=trans_channels if i == 0 else out_channels, mid_channels=trans_channels,
                out_channels=out_channels, last_kernel=kernels[i], projection=i == 0,
                final_relu=final_relu or i < num_blocks - 1,
            ))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(F.relu(self.norm(self.transition(x))))


class LevelHead(nn.Module):
    """Pool → dropout → linear: ``(N, C, H, W)`` → ``(N, num_classes)``."""

    def __init__(self, *, in_channels: int, num_classes: int, dropout: float, pre_maxpool: bool = False) -> None:
        super().__init__()
        self.pre_maxpool = pre_maxpool
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` classes, Gaussian std 0.001, zero bias."""
        fc = nn.Linear(self.fc.in_features, num_classes).to(self.fc.weight.device)
        nn.init.normal_(fc.weight, std=0.001)
        nn.init.zeros_(fc.bias)
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            if self.pre_maxpool:
                x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)  # 14x14 -> 7x7, as Caffe
            x = x.mean(dim=(2, 3))  # (N, C)
        return self.fc(self.dropout(x))


def _w(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class OFFSubnet(nn.Module):
    """Units 28 → 14 → 7 over per-pair (or per-segment) tap features, one head per unit.

    ``forward(inputs)`` takes ``{28: [(N, P, H8, W8), …], 14: […], 7: […]}`` (the tap features, or their channel
    groups, in concatenation order) and returns ``{f"{prefix}{scale}": (N, num_classes)}`` logits per sample, before
    consensus.
    """

    def __init__(self, *, tap_counts: dict[int, int], tap_channels: int, num_classes: int, dropout: float,
                 width: float = 1.0, prefix: str = "off", norm: bool = False, block14b_kernel: int = 3) -> None:
        super().__init__()
        if block14b_kernel not in (1, 3):
            raise ValueError(f"block14b_kernel must be 1 or 3, got {block14b_kernel}")
        p = tap_channels
        c28, c14, c7 = _w(256, width), _w(512, width), _w(1024, width)
        self.prefix = prefix
        self.units = nn.ModuleDict({
            "28": OFFUnit(in_channels=tap_counts[28] * p, trans_channels=_w(64, width), trans_kernel=7,
                          trans_stride=2, out_channels=c28, num_blocks=3, norm=norm),
            "14": OFFUnit(in_channels=tap_counts[14] * p + c28, trans_channels=_w(128, width), trans_kernel=5,
                          trans_stride=2, out_channels=c14, num_blocks=2, last_kernels=(1, block14b_kernel),
                          norm=norm),
            "7": OFFUnit(in_channels=tap_counts[7] * p + c14, trans_channels=_w(256, width), trans_kernel=3,
                         trans_stride=1, out_channels=c7, num_blocks=1, final_relu=False, norm=norm),
        })
        init_msra(self.units)
        self.heads = nn.ModuleDict({
            "28": LevelHead(in_channels=c28, num_classes=num_classes, dropout=dropout, pre_maxpool=True),
            "14": LevelHead(in_channels=c14, num_classes=num_classes, dropout=dropout),
            "7": LevelHead(in_channels=c7, num_classes=num_classes, dropout=dropout),
        })

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{s}" for s in ("28", "14", "7"))

    def forward(self, inputs: dict[int, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        prev: torch.Tensor | None = None
        for scale in (28, 14, 7):
            feats = list(inputs[scale])
            if prev is not None:
                size = feats[0].shape[-2:]
                if prev.shape[-2:] != size:
                    # Odd input sizes can leave the unit one pixel off the backbone's grid.
                    prev = F.adaptive_avg_pool2d(prev, size)
                feats.append(prev)  # taps first, lower unit last
            prev = self.units[str(scale)](torch.cat(feats, dim=1))
            out[f"{self.prefix}{scale}"] = self.heads[str(scale)](prev)
        return out

    def reset_classifier(self, num_classes: int) -> None:
        for head in self.heads.values():
            head.reset(num_classes)
