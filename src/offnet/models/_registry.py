"""Model and backbone registries: ``create_model`` / ``list_models``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..modalities import get_modality
from .backbone import Backbone, InputSpec
from .bninception import bninception
from .networks import ARCHS, ActionRecognizer
from .resnet import resnet18, resnet50
from .tiny import tiny
from .weights import load_backbone_weights, weights_preprocessing

__all__ = ["create_model", "list_models", "list_backbones", "BACKBONES", "check_clip_geometry", "MIN_INPUT_SIZE"]

#: The smallest input side every backbone maps to a non-empty stride-32 feature map.
MIN_INPUT_SIZE = 32

log = logging.getLogger(__name__)

#: backbone name -> (factory, default input size in pixels)
BACKBONES: dict[str, tuple[Callable[..., Backbone], int]] = {
    "bninception": (bninception, 224),
    "resnet18": (resnet18, 224),
    "resnet50": (resnet50, 224),
    "tiny": (tiny, 64),
}


def list_models() -> list[str]:
    """The architectures :func:`create_model` builds."""
    return list(ARCHS)


def list_backbones() -> list[str]:
    return list(BACKBONES)


def create_model(name: str, *, num_classes: int, modality: str = "rgb", backbone: str = "bninception",
                 pretrained: str | Path | None = None, dropout: float = 0.8, spatial_mode: str = "paper",
                 replicate_official_misalignment: bool = False, reduce_channels: int | None = None,
                 subnet_width: float | None = None, subnet_norm: bool = False,
                 block14b_kernel: int = 3, input_spec: dict[str, Any] | None = None) -> ActionRecognizer:
    """Build a ``tsn`` / ``off`` / ``hypnet`` model.

    Args:
        name: architecture, one of :func:`list_models`.
        num_classes: number of action classes.
        modality: ``rgb``, ``flow``, ``rawoff`` or ``rgbdiff`` (see :mod:`offnet.modalities`).
        backbone: ``bninception`` (default, as the paper), ``resnet18``, ``resnet50`` or ``tiny``.
        pretrained: a local file of backbone weights (a converted BN-Inception or torchvision ResNet
            state dict). Non-RGB modalities get TSN's cross-modality init of the first convolution.
        dropout: before every classifier (0.8 in the paper).
        spatial_mode: OFF operator mode, ``paper`` (Sobel x/y on the reduced feature) or ``official``.
        replicate_official_misalignment: reproduce the authors' training-time pairing bug.
        reduce_channels: channels of the per-tap 1×1 reduction (default 128; 32 for ``tiny``).
        subnet_width: width multiplier of the OFF sub-network (default 1; 0.25 for ``tiny``).
        subnet_norm: BatchNorm after each sub-network unit's transition conv (not in the paper; for
            sub-networks trained from scratch with the backbone, see :mod:`offnet.models.subnet`).
        block14b_kernel: last kernel of block 14b: 3 as the authors' network (default) or 1.
        input_spec: the input preprocessing (``InputSpec`` fields as a dict); default: what the
            ``pretrained`` file says it expects (stored in it, a ``<file>.json`` sidecar, or the published
            values of a file recognised by its keys), else the backbone's default. Recorded in
            ``model.config`` so that a checkpoint rebuilds the model with the preprocessing it was trained with.

    Returns:
        an :class:`~offnet.models.networks.ActionRecognizer` mapping ``(B, T, C, H, W)`` to
        ``{level: (B, num_classes)}``.
    """
    if name not in ARCHS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(ARCHS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; available: {', '.join(BACKBONES)}")
    mod = get_modality(modality)
    factory, size = BACKBONES[backbone]
    net = factory(in_channels=mod.network_channels)
    if pretrained is not None:
        load_backbone_weights(net, pretrained, first_conv=net.first_conv)
        if input_spec is None:
            spec, where = weights_preprocessing(pretrained, net.input_spec)
            log.info("input preprocessing of %s (%s): %s, %s, mean %s, std %s", pretrained, where,
                     "BGR" if spec.bgr else "RGB", "0-255" if spec.scale255 else "0-1", list(spec.mean),
                     list(spec.std))
            net.input_spec = spec
    if input_spec is not None:
        fields = {f.name for f in dataclasses.fields(InputSpec)} - {"size"}
        unknown = sorted(set(input_spec) - fields)
        if unknown:
            raise ValueError(f"input_spec: unknown field(s) {unknown}; valid: {sorted(fields)}")
        values = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in input_spec.items()}
        net.input_spec = dataclasses.replace(net.input_spec, **values)
    spec_dict = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(net.input_spec).items()
                 if k != "size"}
    config = dict(name=name, num_classes=num_classes, modality=modality, backbone=backbone, dropout=dropout,
                  spatial_mode=spatial_mode, replicate_official_misalignment=replicate_official_misalignment,
                  reduce_channels=reduce_channels, subnet_width=subnet_width, subnet_norm=subnet_norm,
                  block14b_kernel=block14b_kernel, input_spec=spec_dict)
    return ActionRecognizer(
        arch=name, backbone=net, num_classes=num_classes, modality=modality, dropout=dropout,
        spatial_mode=spatial_mode, replicate_official_misalignment=replicate_official_misalignment,
        reduce_channels=reduce_channels, subnet_width=subnet_width, subnet_norm=subnet_norm,
        block14b_kernel=block14b_kernel, default_size=size, config=config,
    )


def check_clip_geometry(archs: list[str] | tuple[str, ...], *, segments: int, size: int) -> None:
    """Raise ``ValueError`` naming the option when clips of ``segments`` x ``size`` px cannot run through ``archs``."""
    if segments < 1:
        raise ValueError(f"--segments must be at least 1, got {segments}")
    if "off" in archs and segments < 2:
        raise ValueError(f"off needs at least 2 segments (one pair), got --segments {segments}")
    if size < MIN_INPUT_SIZE:
        raise ValueError(f"--size {size} px is too small: the backbones need at least {MIN_INPUT_SIZE} px")
