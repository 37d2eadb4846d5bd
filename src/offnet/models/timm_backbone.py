"""Any timm model as an OFF backbone: ``backbone="timm:NAME"``.

timm (an optional extra: ``pip install 'offnet[timm]'``) builds ``NAME`` with ``features_only=True``: a
module whose ``feature_info`` describes the feature maps its forward returns as a list, with the channels
(``feature_info.channels()``) and the stride relative to the input (``feature_info.reduction()``) of each.
OFF needs three scales at strides 8, 16 and 32 (28/14/7 px for a 224 px input, paper Sec. 4.1). The
adapter picks three distinct maps, in increasing depth, whose strides are closest to 8/16/32 on a log
scale (the sum of ``|log2(stride / target)|`` is minimal; among equally close choices the deeper maps win).
A ResNet or ConvNeXt offers exactly 8/16/32; a model without those strides gets the nearest it has (a
plain ViT offers only stride 16: its last three blocks then serve as the three scales, and the OFF
sub-network resamples each unit's output to the next tap's size). The deepest chosen map is the final
feature map the TSN head pools. Maps that come out channels-last (NHWC) are permuted to NCHW.

Preprocessing comes from the model's ``pretrained_cfg`` (``mean``, ``std``, ``input_size``; timm's values
are RGB in 0–1), so ``InputSpec`` matches timm's weights. The first convolution (the one that takes
``in_channels`` inputs) is built by timm with ``in_chans=in_channels``; with ``pretrained="timm"`` timm
loads its own ImageNet weights and adapts that convolution for flow / Raw OFF inputs itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from .._optional import require
from .backbone import IMAGENET_SPEC, SCALES, Backbone, InputSpec

__all__ = ["TimmBackbone", "timm_backbone", "choose_feature_maps", "TARGET_STRIDES"]

#: The strides of the three OFF scales 28, 14 and 7.
TARGET_STRIDES: tuple[int, int, int] = (8, 16, 32)


def choose_feature_maps(reductions: Sequence[int], targets: Sequence[int] = TARGET_STRIDES) -> tuple[int, ...]:
    """Indices of three feature maps (increasing) whose strides best match ``targets`` (see the module doc).

    >>> choose_feature_maps([2, 4, 8, 16, 32])
    (2, 3, 4)
    >>> choose_feature_maps([4, 8, 16, 32])
    (1, 2, 3)
    >>> choose_feature_maps([16] * 12)     # a ViT: the last three blocks
    (9, 10, 11)
    """
    if len(reductions) < len(targets):
        raise ValueError(f"{len(reductions)} feature map(s) (strides {list(reductions)}), but OFF needs "
                         f"{len(targets)} at distinct depths")
    best: tuple[float, tuple[int, ...]] | None = None
    for combo in itertools.combinations(range(len(reductions)), len(targets)):
        cost = sum(abs(math.log2(reductions[i] / t)) for i, t in zip(combo, targets))
        # ties: the deeper combination (compared from the deepest map down)
        if best is None or cost < best[0] - 1e-9 or (abs(cost - best[0]) <= 1e-9 and combo[::-1] > best[1][::-1]):
            best = (cost, combo)
    assert best is not None
    return best[1]


def _spec_from_cfg(cfg: dict | None, *, name: str) -> InputSpec:
    """InputSpec from timm's ``pretrained_cfg`` (RGB, 0–1); ImageNet values for keys it lacks."""
    cfg = dict(cfg or {})
    mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_SPEC.mean))
    std = tuple(float(v) for v in cfg.get("std", IMAGENET_SPEC.std))
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"timm:{name}: pretrained_cfg mean/std must be three values (std > 0), got mean {mean}, "
                         f"std {std}")
    size = cfg.get("input_size", (3, IMAGENET_SPEC.size, IMAGENET_SPEC.size))
    return InputSpec(mean=mean, std=std, bgr=False, scale255=False, size=int(size[-1]),  # type: ignore[arg-type]
                     flow_mean=IMAGENET_SPEC.flow_mean, flow_std=IMAGENET_SPEC.flow_std)


class TimmBackbone(Backbone):
    """A timm ``features_only`` model: ``(N, C, H, W)`` → one tap per OFF scale and the deepest as final map.

    Tap names are timm's module names of the chosen maps (``layer2``, ``stages.1``, …); the wrapped
    model is ``self.model`` (its state-dict keys start with ``model.``).
    """

    def __init__(self, model: nn.Module, *, name: str, in_channels: int) -> None:
        super().__init__()
        info = getattr(model, "feature_info", None)
        if info is None or not all(hasattr(info, a) for a in ("channels", "reduction")):
            raise ValueError(f"timm:{name}: the model has no feature_info with channels() and reduction(); was it "
                             "built with features_only=True?")
        channels = [int(c) for c in info.channels()]
        reductions = [int(r) for r in info.reduction()]
        modules = list(info.module_name()) if hasattr(info, "module_name") else []
        if len(modules) != len(channels) or len(set(modules)) != len(modules):
            modules = [f"feature{i}" for i in range(len(channels))]
        try:
            chosen = choose_feature_maps(reductions)
        except ValueError as exc:
            raise ValueError(f"timm:{name}: {exc}; choose a model with at least three feature stages") from None
        self.model = model
        self.name = name
        self.chosen = chosen  # indices into the list the model returns
        self.strides = tuple(reductions[i] for i in chosen)
        names = [modules[i] for i in chosen]
        self.tap_names = {scale: (tap,) for scale, tap in zip(SCALES, names)}
        self.tap_channels = {modules[i]: channels[i] for i in chosen}
        self.feature_dim = channels[chosen[-1]]
        self.input_spec = _spec_from_cfg(getattr(model, "pretrained_cfg", None), name=name)
        self.first_conv = self._find_first_conv(in_channels)
        self._num_maps = len(channels)

    def _find_first_conv(self, in_channels: int) -> str:
        for module_name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and module.in_channels == in_channels:
                return module_name
        raise ValueError(f"timm:{self.name}: no convolution takes in_channels={in_channels} inputs; does the model "
                         "accept timm's in_chans argument?")

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        maps = self.model(x)  # list of (N, C_i, H / r_i, W / r_i), one per feature map
        if isinstance(maps, dict):
            maps = list(maps.values())
        if len(maps) != self._num_maps:
            raise RuntimeError(f"timm:{self.name}: the model returned {len(maps)} feature maps, its feature_info "
                               f"describes {self._num_maps}")
        taps: dict[str, torch.Tensor] = {}
        for scale, i in zip(SCALES, self.chosen):
            tap = self.tap_names[scale][0]
            f = maps[i]
            want = self.tap_channels[tap]
            if f.dim() == 4 and f.shape[1] != want and f.shape[-1] == want:
                f = f.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
            taps[tap] = f
        return taps, taps[self.tap_names[SCALES[-1]][0]]


def timm_backbone(name: str, *, in_channels: int = 3, pretrained: bool = False) -> TimmBackbone:
    """Build timm's ``name`` with ``features_only=True`` and wrap it (see the module docstring).

    ``pretrained`` asks timm for its own weights (timm downloads them into its cache). Raises
    :class:`~offnet._optional.MissingDependency` when timm is not installed and ``ValueError`` for an
    unknown model name.
    """
    if not name:
        raise ValueError("backbone 'timm:' names no model; write timm:NAME, e.g. timm:resnet50")
    timm = require("timm", extra="timm", purpose=f"backbone 'timm:{name}'")
    try:
        model = timm.create_model(name, pretrained=pretrained, features_only=True, in_chans=in_channels)
    except RuntimeError as exc:  # timm: "Unknown model (NAME)"
        if "nknown model" in str(exc):
            raise ValueError(f"backbone 'timm:{name}': timm has no model {name!r} (see timm.list_models())") from None
        raise
    net = TimmBackbone(model, name=name, in_channels=in_channels)
    deepest = max(net.chosen)
    out_indices = getattr(model.feature_info, "out_indices", None)
    if deepest < net._num_maps - 1 and out_indices is not None and len(out_indices) == net._num_maps:
        # maps deeper than the chosen ones would be computed for nothing: rebuild without them
        model = timm.create_model(name, pretrained=pretrained, features_only=True, in_chans=in_channels,
                                  out_indices=tuple(out_indices[: deepest + 1]))
        net = TimmBackbone(model, name=name, in_channels=in_channels)
    return net
