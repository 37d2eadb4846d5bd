"""Loading weights from local files: checked state dicts, backbone checkpoints, cross-modality init."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_state_dict_checked", "load_backbone_weights", "read_state_dict"]

log = logging.getLogger(__name__)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local ``.pth``/``.pt`` file (``weights_only=True``).

    Accepts a bare state dict or one wrapped under ``state_dict`` / ``model``; strips a DataParallel
    ``module.`` prefix. Raises ``FileNotFoundError`` or ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, pickled code, not a torch file …
        raise ValueError(
            f"cannot read weights from {path}: {type(exc).__name__}: {exc}. Expected a PyTorch state dict "
            "saved with torch.save (weights only)."
        ) from None
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
