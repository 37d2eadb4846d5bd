"""TSN, OFF and Hyp-Net: one recognizer class, three architectures.

``tsn``     backbone → dropout → linear per segment, average consensus over the T segments.
``off``     TSN plus the OFF sub-network: an :class:`~offnet.models.off.OFFOperator` per tap on every
            consecutive segment pair, three units, one head per unit; consensus over the T−1 pairs.
``hypnet``  the paper's hypercolumn ablation (Sec. 5.2, Table 3): the same sub-network fed the
            1×1-reduced ReLU features of each segment, without spatial gradients or temporal difference;
            consensus over the T segments.

All take ``x (B, T, C, H, W)`` and return ``{level: (B, num_classes)}`` logits after consensus, in
training and eval mode alike. Levels: the backbone head is named after the modality (``rgb``,
``flow``, ``rawoff``, ``rgbdiff``); the sub-network heads are ``off28/off14/off7`` (``hyp…`` for Hyp-Net).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..modalities import Modality, get_modality
from .backbone import SCALES, Backbone, InputSpec
from .off import OFFOperator
from .stems import make_stem
from .subnet import LevelHead, OFFSubnet, init_msra

__all__ = ["ActionRecognizer"]

ARCHS = ("tsn", "off", "hypnet")


def _consensus(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average consensus over segments / pairs: ``(B, S, K)`` → ``(B, K)`` (Eq. 8)."""
    return {k: v.mean(dim=1) for k, v in scores.items()}


class ActionRecognizer(nn.Module):
    """A TSN / OFF / Hyp-Net video classifier (see the module docstring).

    Build it with :func:`offnet.create_model`; ``self.config`` holds the arguments that rebuild it.
    """

    def __init__(self, *, arch: str, backbone: Backbone, num_classes: int, modality: str, dropout: float = 0.8,
                 spatial_mode: str = "paper", replicate_official_misalignment: bool = False,
                 reduce_channels: int | None = None, subnet_width: float | None = None,
                 subnet_norm: bool = False, block14b_kernel: int = 3,
                 default_size: int = 224, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.arch = arch
        self.modality: Modality = get_modality(modality)
        self.config = dict(config or {})
        self.stem = make_stem(modality)
        self.backbone = backbone
        self.input_spec: InputSpec = dataclasses.replace(backbone.input_spec, size=default_size)
        self.backbone_level = modality
        self.heads = nn.ModuleDict(
            {modality: LevelHead(in_channels=backbone.feature_dim, num_classes=num_classes, dropout=dropout)}
        )
        self.tap_ops = nn.ModuleDict()
        self.subnet: OFFSubnet | None = None
        if arch != "tsn":
            default_r, default_w = backbone.subnet_defaults
            r = reduce_channels or default_r
            for tap in backbone.all_taps:
                c = backbone.tap_channels[tap]
                if arch == "off":
                    op: nn.Module = OFFOperator(
                        in_channels=c, reduce_channels=r, mode=spatial_mode,
                        # the authors' flow / RGB-diff OFF nets drop the spatial part
                        spatial=not (spatial_mode == "official" and modality in ("flow", "rgbdiff")),
                        replicate_official_misalignment=replicate_official_misalignment,
                    )
                    width = op.out_channels
                else:
                    op = nn.Sequential(nn.Conv2d(c, r, 1), nn.ReLU(inplace=True))
                    width = r
                init_msra(op)
                self.tap_ops[tap.replace(".", "_")] = op
            self.subnet = OFFSubnet(
                tap_counts={s: len(backbone.tap_names[s]) for s in SCALES}, tap_channels=width,
                num_classes=num_classes, dropout=dropout, width=subnet_width or default_w,
                norm=subnet_norm, block14b_kernel=block14b_kernel,
                prefix="off" if arch == "off" else "hyp",
            )
        self._bn_eval: set[nn.Module] = set()
        self._stage = 0
        self.detach_backbone_head = False  # set per stage (set_stage)

    # ------------------------------------------------------------------ levels
    @property
    def subnet_levels(self) -> tuple[str, ...]:
        return self.subnet.levels if self.subnet is not None else ()

    @property
    def levels(self) -> tuple[str, ...]:
        return (self.backbone_level, *self.subnet_levels)

    @property
    def final_level(self) -> str:
        return self.subnet_levels[-1] if self.subnet is not None else self.backbone_level

    @property
    def num_classes(self) -> int:
        return self.heads[self.backbone_level].fc.out_features

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, *, consensus: bool = True, backbone_only: bool = False
                ) -> dict[str, torch.Tensor]:
        """``x (B, T, C, H, W)`` → ``{level: (B, K)}``; with ``consensus=False`` the per-segment
        (backbone level, ``(B, T, K)``) and per-pair / per-segment (sub-network, ``(B, T−1, K)`` for OFF,
        ``(B, T, K)`` for Hyp-Net) logits before averaging, which the test protocol needs to aggregate
        crops first. ``backbone_only`` skips the sub-network (stage 1 trains only the backbone's head)."""
        if x.dim() != 5:
            raise ValueError(f"expected input (B, T, C, H, W), got shape {tuple(x.shape)}")
        b, t, c, h, w = x.shape
        if c != self.modality.data_channels:
            raise ValueError(
                f"modality {self.modality.name!r} expects C={self.modality.data_channels} channels per segment "
                f"(frames x channels), got C={c}"
            )
        if self.subnet is not None and self.arch == "off" and t < 2 and not backbone_only:
            raise ValueError(f"the OFF network needs at least 2 segments per clip, got T={t}")
        frames = self.stem(x.flatten(0, 1))  # (B*T, C', H, W)
        taps, final = self.backbone(frames)
        pooled = final.mean(dim=(2, 3))  # (B*T, D)
        if self.detach_backbone_head:
            pooled = pooled.detach()  # the head trains, its loss does not reach the backbone
        out = {self.backbone_level: self.heads[self.backbone_level](pooled).view(b, t, -1)}  # (B, T, K)
        if self.subnet is None or backbone_only:
            return _consensus(out) if consensus else out
        inputs: dict[int, list[torch.Tensor]] = {}
        for scale in SCALES:
            feats = []
            for tap in self.backbone.tap_names[scale]:
                f = taps[tap]
                op = self.tap_ops[tap.replace(".", "_")]
                if self.arch == "off":
                    # the OFF's channel groups, each (B*(T-1), P_i, h, w): the unit concatenates them once
                    feats.extend(op.parts(f.view(b, t, *f.shape[1:])))
                else:
                    feats.append(op(f))  # (B*T, R, h, w)
            inputs[scale] = feats
        n = t - 1 if self.arch == "off" else t  # pairs (OFF) or segments (Hyp-Net)
        for level, logits in self.subnet(inputs).items():
            out[level] = logits.view(b, n, -1)  # (B, pairs or segments, K)
        return _consensus(out) if consensus else out

    def fold_batchnorm(self) -> int:
        """Fold BatchNorm into the convolutions that feed it (:mod:`offnet.models.folding`), in place, for
        inference: in the backbone where its structure allows it (``Backbone.foldable_batchnorm``) and in the
        sub-network (``subnet_norm``). Needs eval mode; returns how many were folded. The folded model scores
        as before within float rounding, but is no longer one to train or save."""
        from .folding import fold_batchnorm

        scope = [self.subnet] if self.subnet is not None else []
        if getattr(self.backbone, "foldable_batchnorm", False):
            scope.append(self.backbone)
        param = next(self.parameters())
        size = self.input_spec.size
        x = torch.zeros(1, 2, self.modality.data_channels, size, size, device=param.device, dtype=param.dtype)
        return fold_batchnorm(self, lambda: self(x), scope=scope)

    # ------------------------------------------------------------------ stages
    def _backbone_bns(self) -> list[nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def set_stage(self, stage: int, *, partial_bn: bool = True, partial_bn_train_conv1: bool = False,
                  backbone_head_grad: bool = True) -> None:
        """Configure what trains (paper Sec. 4.3).

        1: backbone and its head (TSN); 2: backbone and its head frozen, every backbone BN in eval mode
        (conv1's BN keeps batch statistics with ``partial_bn_train_conv1``), the OFF sub-network trains;
        3: everything. ``partial_bn`` (stages 1 and 3): only the first BN layer updates its statistics and
        affine parameters, as TSN does; turn it off when training a backbone from scratch.
        ``backbone_head_grad=False`` (stage 3): the backbone head trains on detached features, so that its loss
        does not shape the backbone.
        """
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        if self.subnet is None and stage != 1:
            raise ValueError("tsn has no OFF sub-network: only stage 1 exists for it")
        backbone_trains = stage in (1, 3)
        subnet_trains = stage in (2, 3)
        for p in [*self.stem.parameters(), *self.backbone.parameters(), *self.heads.parameters()]:
            p.requires_grad_(backbone_trains)
        for p in [*self.tap_ops.parameters(), *(self.subnet.parameters() if self.subnet else [])]:
            p.requires_grad_(subnet_trains)
        bns = self._backbone_bns()
        self._bn_eval = set()
        if backbone_trains and partial_bn:
            for bn in bns[1:]:
                self._bn_eval.add(bn)
                for p in bn.parameters():
                    p.requires_grad_(False)
        elif not backbone_trains:
            self._bn_eval = set(bns[1:] if partial_bn_train_conv1 else bns)
        self._stage = stage
        self.detach_backbone_head = stage == 3 and not backbone_head_grad
        self.train(self.training)

    def loss_levels(self, stage: int) -> tuple[str, ...]:
        """Levels that carry a loss in ``stage``: 1 backbone head, 2 sub-network heads, 3 all."""
        if stage == 1:
            return (self.backbone_level,)
        if self.subnet is None:
            raise ValueError("tsn has no OFF sub-network: only stage 1 exists for it")
        return self.subnet_levels if stage == 2 else self.levels

    def train(self, mode: bool = True) -> ActionRecognizer:
        super().train(mode)
        if mode:
            for bn in self._bn_eval:
                bn.eval()
        return self

    def param_groups(self, *, weight_decay: float) -> list[dict[str, Any]]:
        """Trainable parameters in Caffe's groups: weights (lr×1, decay), biases (lr×2, no decay),
        norm scales (lr×1, no decay). Empty groups are dropped."""
        weights, biases, norms = [], [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith("bias"):
                biases.append(p)
            elif p.dim() == 1:
                norms.append(p)
            else:
                weights.append(p)
        groups = [
            {"params": weights, "lr_mult": 1.0, "weight_decay": weight_decay, "name": "weights"},
            {"params": biases, "lr_mult": 2.0, "weight_decay": 0.0, "name": "biases"},
            {"params": norms, "lr_mult": 1.0, "weight_decay": 0.0, "name": "norms"},
        ]
        return [g for g in groups if g["params"]]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every head with a fresh one for ``num_classes`` classes (fine-tuning elsewhere)."""
        for head in self.heads.values():
            head.reset(num_classes)
        if self.subnet is not None:
            self.subnet.reset_classifier(num_classes)
        self.config["num_classes"] = num_classes
