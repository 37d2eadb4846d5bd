"""Parameter and FLOP counts of a model at a given input, without running real arithmetic."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_gflops", "meta_copy"]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_gflops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """GFLOPs of one forward pass at ``input_shape`` (e.g. ``(1, T, C, H, W)``).

    Multiply-adds are counted once (the convention of the TSN/OFF papers and of fvcore); convolutions
    and matrix products only. The pass runs on the ``meta`` device: no memory, no arithmetic.
    """
    meta = meta_copy(model)
    meta.eval()
    x = torch.empty(input_shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x)
    return counter.get_total_flops() / 2 / 1e9


def meta_copy(model: nn.Module) -> nn.Module:
    """``model`` itself when it already lives on the ``meta`` device, else a copy moved there (no memory)."""
    return model if _on_meta(model) else copy.deepcopy(model).to("meta")


def _on_meta(model: nn.Module) -> bool:
    return all(p.is_meta for p in model.parameters())
