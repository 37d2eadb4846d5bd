"""Loading weights from local files: checked state dicts, backbone checkpoints, cross-modality init."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import torch
from torch import nn

from .backbone import InputSpec

__all__ = ["load_state_dict_checked", "load_backbone_weights", "read_state_dict", "read_preprocessing",
           "weights_preprocessing", "spec_from_preprocessing", "check_backbone_weights", "WeightsReport"]

log = logging.getLogger(__name__)

#: What the pretrainedmodels package publishes for its BN-Inception ImageNet file (the file most PyTorch
#: TSN/TSM code starts from): BGR, 0-255, mean [104, 117, 128], std 1. The Caffe TSN/OFF models use
#: [104, 117, 123] (:data:`~offnet.models.backbone.CAFFE_BGR_SPEC`).
PRETRAINEDMODELS_BNINCEPTION = {"input_space": "BGR", "input_range": [0, 255], "mean": [104, 117, 128],
                                "std": [1, 1, 1]}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local ``.pth``/``.pt`` file (``weights_only=True``).

    Accepts a bare state dict or one wrapped under ``state_dict`` / ``model``; strips a DataParallel
    ``module.`` prefix. Raises ``FileNotFoundError`` or ``ValueError`` naming the file.
    """
    path = Path(path)
    return _unwrap(_load(path), path)


def _load(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, pickled code, not a torch file …
        if "weights_only" in str(exc):
            raise ValueError(
                f"cannot read weights from {path}: it holds Python objects besides tensors (possibly code), which "
                "offnet never unpickles. Re-save just its state dict (torch.save(model.state_dict(), FILE)) where "
                "you trust the file; never load an untrusted file with weights_only=False"
            ) from None
        raise ValueError(
            f"cannot read weights from {path}: {type(exc).__name__}: {exc}. Expected a PyTorch state dict "
            "saved with torch.save (weights only)."
        ) from None


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, torch.Tensor], *,
                            strict_shapes: bool = True, source: str = "state dict",
                            ) -> tuple[list[str], list[str]]:
    """Load ``state_dict`` non-strictly, returning ``(missing, unexpected)`` keys.

    A tensor whose shape differs from the model's is refused with a ``ValueError`` naming the key and
    both shapes (``strict_shapes``) or skipped and reported as missing (``strict_shapes=False``, used to
    fine-tune with a new head).
    """
    own = model.state_dict()
    usable: dict[str, torch.Tensor] = {}
    mismatched: list[str] = []
    for key, value in state_dict.items():
        if key in own and own[key].shape != value.shape:
            mismatched.append(f"{key}: model {tuple(own[key].shape)} vs {source} {tuple(value.shape)}")
        elif key in own:
            usable[key] = value
    if mismatched and strict_shapes:
        raise ValueError(
            f"shape mismatch loading {source} ({len(mismatched)} tensors): " + "; ".join(mismatched[:5])
            + ("" if len(mismatched) <= 5 else " …") + ". Check the architecture, backbone, modality and "
            "number of classes."
        )
    result = model.load_state_dict(usable, strict=False)
    missing = sorted(set(result.missing_keys))
    unexpected = sorted(k for k in state_dict if k not in own)
    if mismatched:
        log.info("skipped %d tensors of mismatched shape: %s", len(mismatched), ", ".join(mismatched))
    return missing, unexpected


def load_backbone_weights(backbone: nn.Module, path: str | Path, *, first_conv: str) -> tuple[list[str], list[str]]:
    """Load ImageNet (or TSN) backbone weights from a local file into ``backbone``.

    When the file's first convolution has 3 input channels and the backbone's has another number
    (flow: 10, Raw OFF: 36, RGB-diff: 15), its weights are averaged over channels and replicated, TSN's
    cross-modality initialisation. Missing and unexpected keys are logged and returned.
    """
    sd = read_state_dict(path)
    key = f"{first_conv}.weight"
    own = backbone.state_dict()
    if key in sd and key in own and sd[key].shape[1] != own[key].shape[1]:
        w = sd[key]
        sd[key] = w.mean(dim=1, keepdim=True).expand(-1, own[key].shape[1], -1, -1).contiguous()
        log.info("cross-modality init: %s averaged over %d RGB channels, replicated to %d",
                 key, w.shape[1], own[key].shape[1])
    missing, unexpected = load_state_dict_checked(backbone, sd, source=str(path))
    if missing:
        log.warning("%s: %d backbone tensors missing from the file: %s", path, len(missing), ", ".join(missing[:10]))
    if unexpected:
        log.info("%s: %d tensors not used by the backbone: %s", path, len(unexpected), ", ".join(unexpected[:10]))
    return missing, unexpected


def spec_from_preprocessing(meta: dict, *, base: InputSpec, source: str = "preprocessing") -> InputSpec:
    """An :class:`InputSpec` from ``{"input_space": "BGR"|"RGB", "input_range": [0, 255]|[0, 1], "mean": [...],
    "std": [...]}`` (the vocabulary of the pretrainedmodels package); keys not given keep ``base``'s values."""
    unknown = sorted(set(meta) - {"input_space", "input_range", "mean", "std"})
    if unknown:
        raise ValueError(f"{source}: unknown preprocessing key(s) {unknown}; valid: input_space, input_range, "
                         "mean, std")
    bgr, scale255, mean, std = base.bgr, base.scale255, base.mean, base.std
    if "input_space" in meta:
        if str(meta["input_space"]).upper() not in ("RGB", "BGR"):
            raise ValueError(f"{source}: input_space must be RGB or BGR, got {meta['input_space']!r}")
        bgr = str(meta["input_space"]).upper() == "BGR"
    if "input_range" in meta:
        rng = list(meta["input_range"])
        if rng not in ([0, 255], [0, 1]):
            raise ValueError(f"{source}: input_range must be [0, 255] or [0, 1], got {meta['input_range']!r}")
        scale255 = rng == [0, 255]
    for name in ("mean", "std"):
        if name in meta:
            values = tuple(float(v) for v in meta[name])
            if len(values) != 3 or not all(math.isfinite(v) for v in values) or (name == "std" and min(values) <= 0):
                raise ValueError(f"{source}: {name} must be three finite numbers (std > 0), got {meta[name]!r}")
            if name == "mean":
                mean = values
            else:
                std = values
    return dataclasses.replace(base, bgr=bgr, scale255=scale255, mean=mean, std=std)


def read_preprocessing(path: str | Path) -> tuple[dict | None, str]:
    """The preprocessing that travels with a weights file: ``(meta, where)``.

    In order: a ``preprocessing`` mapping stored in the file beside its ``state_dict``; a sidecar
    ``<file>.json`` holding such a mapping; the published values of a file recognised by its key names
    (the pretrainedmodels BN-Inception: ``conv1_7x7_s2`` and ``last_linear``); else ``(None, ...)``.
    """
    path = Path(path)
    obj = _load(path)
    if isinstance(obj, dict) and isinstance(obj.get("preprocessing"), dict):
        return dict(obj["preprocessing"]), f"stored in {path.name}"
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except ValueError as exc:
            raise ValueError(f"{sidecar}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{sidecar}: expected a JSON object of preprocessing keys")
        return meta.get("preprocessing", meta), f"sidecar {sidecar.name}"
    keys = set(_unwrap(obj, path))
    if "conv1_7x7_s2.weight" in keys and "last_linear.weight" in keys:
        return dict(PRETRAINEDMODELS_BNINCEPTION), "the pretrainedmodels BN-Inception file (recognised by its keys)"
    return None, "none with the file: the backbone's default"


def weights_preprocessing(path: str | Path, base: InputSpec) -> tuple[InputSpec, str]:
    """``(spec, where)``: the input preprocessing the weights in ``path`` expect (``base`` if they say nothing)."""
    meta, where = read_preprocessing(path)
    if meta is None:
        return base, where
    return spec_from_preprocessing(meta, base=base, source=f"{path} ({where})"), where


@dataclasses.dataclass
class WeightsReport:
    """What loading a weights file into a backbone would do."""

    used: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # "key: file (shape) vs backbone (shape)"
    adapted: list[str]  # first conv averaged over RGB channels for another modality
    spec: InputSpec
    spec_source: str

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def check_backbone_weights(backbone: nn.Module, path: str | Path, *, first_conv: str) -> WeightsReport:
    """Compare the tensors in ``path`` with ``backbone``'s, without loading anything."""
    sd = read_state_dict(path)
    own = backbone.state_dict()
    adapted, mismatched = [], []
    for key, value in sd.items():
        if key not in own or own[key].shape == value.shape:
            continue
        if key == f"{first_conv}.weight" and value.shape[1] == 3 and value.shape[0] == own[key].shape[0]:
            adapted.append(f"{key}: {tuple(value.shape)} -> {tuple(own[key].shape)} (cross-modality init)")
        else:
            mismatched.append(f"{key}: file {tuple(value.shape)} vs backbone {tuple(own[key].shape)}")
    used = sorted(k for k in sd if k in own)
    missing = sorted(k for k in own if k not in sd and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in sd if k not in own)
    spec, where = weights_preprocessing(path, backbone.input_spec)
    return WeightsReport(used=used, missing=missing, unexpected=unexpected, mismatched=mismatched,
                         adapted=adapted, spec=spec, spec_source=where)
