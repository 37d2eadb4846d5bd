"""Score fusion across levels (and, with matching videos, across modalities)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["fuse_scores"]


def fuse_scores(levels: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Weighted sum of per-level scores ``{level: (B, num_classes)}`` → ``(B, num_classes)``.

    ``weights`` maps level names to weights; ``None`` is the paper's plain sum over all levels given
    (Sec. 4.3). Unknown levels raise ``ValueError`` listing the available ones.
    """
    if not levels:
        raise ValueError("no scores to fuse")
    weights = dict(weights) if weights is not None else {k: 1.0 for k in levels}
    missing = [k for k in weights if k not in levels]
    if missing:
        raise ValueError(f"cannot fuse unknown level(s) {missing}; available: {sorted(levels)}")
    total: torch.Tensor | None = None
    for key, w in weights.items():
        term = levels[key] * float(w)
        total = term if total is None else total + term
    assert total is not None
    return total
