"""Model and backbone registries: ``create_model`` / ``list_models`` / ``register_backbone``.

Backbones are looked up by name in :data:`BACKBONES`: the built-in ones, those added with
:func:`register_backbone` in this process, and ``timm:NAME`` (any timm model with ``features_only``, see
:mod:`offnet.models.timm_backbone`), which is resolved on demand and never stored.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..hub import resolve_weights
from ..modalities import get_modality
from .backbone import SCALES, Backbone, InputSpec
from .bninception import bninception
from .networks import ARCHS, ActionRecognizer
from .resnet import resnet18, resnet50
from .tiny import tiny
from .weights import load_backbone_weights, weights_preprocessing

__all__ = ["create_model", "list_models", "list_backbones", "register_backbone", "build_backbone", "check_backbone",
           "check_backbone_name", "BACKBONES",
           "BUILTIN_BACKBONES", "TIMM_PREFIX", "check_clip_geometry", "MIN_INPUT_SIZE"]

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
#: names :func:`register_backbone` may not replace
BUILTIN_BACKBONES: frozenset[str] = frozenset(BACKBONES)
#: ``backbone="timm:NAME"`` builds timm's ``NAME`` with ``features_only=True``
TIMM_PREFIX = "timm:"
#: ``pretrained="timm"`` with a ``timm:NAME`` backbone: timm's own weights (and its preprocessing)
TIMM_WEIGHTS = "timm"


def list_models() -> list[str]:
    """The architectures :func:`create_model` builds."""
    return list(ARCHS)


def list_backbones() -> list[str]:
    """Registered backbone names (built-in first); any ``timm:NAME`` is accepted besides these."""
    return list(BACKBONES)


def register_backbone(name: str, factory: Callable[..., Backbone], default_size: int = 224, *,
                      overwrite: bool = False) -> None:
    """Make ``backbone=name`` work in :func:`create_model`, configs (``model.backbone``) and checkpoints.

    Args:
        name: the name configs and checkpoints use; not a built-in name and not starting with ``timm:``.
        factory: ``factory(in_channels=C)`` returns an :class:`~offnet.models.backbone.Backbone` whose first
            convolution takes ``C`` channels (3 for RGB, 10 for flow, …); checked when a model is built.
        default_size: the input side in pixels the backbone is meant for (the test crop and demo size).
        overwrite: replace an earlier registration of ``name`` with another factory.

    The registry lives in this process: register before building, training or loading a checkpoint of a
    model with this backbone (e.g. in the module that defines it), then use ``offnet.cli.main([...])`` or
    the library in the same process. Registering the same factory twice is harmless.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip() or any(c.isspace() for c in name):
        raise ValueError(f"register_backbone: name must be a non-empty string without spaces, got {name!r}")
    if name.startswith(TIMM_PREFIX):
        raise ValueError(f"register_backbone: names starting with {TIMM_PREFIX!r} are reserved for timm models, got "
                         f"{name!r}; choose another name")
    if name in BUILTIN_BACKBONES:
        raise ValueError(f"register_backbone: {name!r} is a built-in backbone and cannot be replaced; choose "
                         "another name")
    if not callable(factory):
        raise ValueError(f"register_backbone({name!r}): factory must be callable as factory(in_channels=C), got "
                         f"{factory!r}")
    if isinstance(default_size, bool) or not isinstance(default_size, int) or default_size < MIN_INPUT_SIZE:
        raise ValueError(f"register_backbone({name!r}): default_size must be an integer >= {MIN_INPUT_SIZE} (pixels), "
                         f"got {default_size!r}")
    known = BACKBONES.get(name)
    if known is not None and known[0] is not factory and not overwrite:
        raise ValueError(f"register_backbone: {name!r} is already registered with {_describe(known[0])}; pass "
                         "overwrite=True to replace it")
    BACKBONES[name] = (factory, default_size)


def _describe(factory: Callable[..., Backbone]) -> str:
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None) or repr(factory)
    return f"{module}.{qualname}" if module else qualname


def _unknown_backbone(name: object) -> ValueError:
    return ValueError(
        f"unknown backbone {name!r}; registered: {', '.join(BACKBONES)}, or timm:NAME for a timm model. A backbone "
        "of your own must be registered with offnet.register_backbone(name, factory, default_size) in the process "
        "that builds the model (before training, testing or loading its checkpoint)"
    )


def check_backbone(net: object, *, name: str, in_channels: int) -> Backbone:
    """Check that ``net`` (what the factory of backbone ``name`` returned) implements the Backbone interface.

    Raises ``ValueError`` naming the backbone and the first attribute that is missing or malformed.
    """
    where = f"backbone {name!r}"
    if not isinstance(net, Backbone):
        raise ValueError(f"{where}: the factory returned {type(net).__name__}, not an offnet.models.Backbone "
                         "subclass instance")
    for attr in ("tap_names", "tap_channels", "feature_dim", "input_spec", "first_conv"):
        if not hasattr(net, attr):
            raise ValueError(f"{where}: the Backbone sets no {attr!r} attribute (see offnet.models.Backbone)")
    if not isinstance(net.tap_names, dict) or sorted(net.tap_names) != sorted(SCALES):
        got = sorted(net.tap_names) if isinstance(net.tap_names, dict) else net.tap_names
        raise ValueError(f"{where}: tap_names must map each OFF scale {list(SCALES)} (strides 8/16/32) to a tuple "
                         f"of tap names, got keys {got!r}")
    for scale in SCALES:
        taps = net.tap_names[scale]
        if isinstance(taps, str) or not taps:
            raise ValueError(f"{where}: tap_names[{scale}] must be a non-empty tuple of names, got {taps!r}")
        for tap in taps:
            channels = net.tap_channels.get(tap) if isinstance(net.tap_channels, dict) else None
            if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
                raise ValueError(f"{where}: tap_channels[{tap!r}] must be a positive integer, got {channels!r}")
    if isinstance(net.feature_dim, bool) or not isinstance(net.feature_dim, int) or net.feature_dim < 1:
        raise ValueError(f"{where}: feature_dim must be a positive integer, got {net.feature_dim!r}")
    if not isinstance(net.input_spec, InputSpec):
        raise ValueError(f"{where}: input_spec must be an offnet.models.InputSpec, got {net.input_spec!r}")
    conv = f"{net.first_conv}.weight"
    weights = dict(net.named_parameters())
    if conv not in weights:
        raise ValueError(f"{where}: first_conv={net.first_conv!r} names no parameter {conv!r}; give the state-dict "
                         "prefix of the first convolution")
    if weights[conv].dim() != 4 or weights[conv].shape[1] != in_channels:
        raise ValueError(f"{where}: the first convolution {conv} takes {tuple(weights[conv].shape)[1:2]} input "
                         f"channels, but the factory was asked for in_channels={in_channels}")
    return net


def build_backbone(name: str, *, in_channels: int, timm_pretrained: bool = False) -> tuple[Backbone, int]:
    """``(backbone, default input size)`` for a registered name or ``timm:NAME``; ``ValueError`` if unknown.

    ``timm_pretrained``: a ``timm:NAME`` backbone starts from timm's own weights.
    """
    if isinstance(name, str) and name.startswith(TIMM_PREFIX):
        from .timm_backbone import timm_backbone

        net = timm_backbone(name[len(TIMM_PREFIX):], in_channels=in_channels, pretrained=timm_pretrained)
        return check_backbone(net, name=name, in_channels=in_channels), net.input_spec.size
    if name not in BACKBONES:
        raise _unknown_backbone(name)
    factory, size = BACKBONES[name]
    net = factory(in_channels=in_channels)
    return check_backbone(net, name=name, in_channels=in_channels), size


def check_backbone_name(name: str) -> None:
    """Raise the ``unknown backbone`` ``ValueError`` unless ``name`` is registered or a ``timm:NAME``."""
    if isinstance(name, str) and name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX):
        return
    if name not in BACKBONES:
        raise _unknown_backbone(name)


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
        backbone: ``bninception`` (default, as the paper), ``resnet18``, ``resnet50``, ``tiny``, a name added
            with :func:`register_backbone`, or ``timm:NAME`` (a timm model, see :mod:`offnet.models.timm_backbone`).
        pretrained: backbone weights (a converted BN-Inception or torchvision ResNet state dict): a local
            file, an ``https://``/``file://`` URL or ``hf-hub:owner/repo[/file]`` (downloaded once into the
            cache, with an optional ``#sha256=`` check; :mod:`offnet.hub`). Non-RGB modalities get TSN's
            cross-modality init of the first convolution. With a ``timm:NAME`` backbone, ``"timm"`` loads
            timm's own weights for ``NAME``.
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
    mod = get_modality(modality)
    timm_weights = pretrained == TIMM_WEIGHTS
    if timm_weights and not backbone.startswith(TIMM_PREFIX):
        raise ValueError(f"pretrained={TIMM_WEIGHTS!r} asks timm for its weights, which needs backbone='timm:NAME', "
                         f"not {backbone!r}; give a weights file for this backbone")
    net, size = build_backbone(backbone, in_channels=mod.network_channels, timm_pretrained=timm_weights)
    if pretrained is not None and not timm_weights:
        pretrained = resolve_weights(pretrained)  # a URL or hf-hub: reference is downloaded once
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
