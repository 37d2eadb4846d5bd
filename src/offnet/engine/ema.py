"""An exponential moving average of a model's weights during training (``train.ema_window``).

The average covers every floating-point entry of the model's ``state_dict`` (parameters and BatchNorm
statistics); integer buffers (BatchNorm's step count) are copied. Its time constant is a fraction of the
stage's optimiser steps rather than a fixed decay, so a short run on a small dataset and a long one on a large
dataset average over the same share of their training: after step ``k`` of ``n`` with window ``w``,

    ema ← ema + (weights − ema) / τ,   τ = min(w · n, k)

(τ = k early on makes the average a plain mean of the steps so far, so the initial weights do not linger).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s weights over the last ``window`` share of ``total_steps`` steps.

    :attr:`module` is an eval-mode copy of ``model`` that holds the average (validate, save or load it);
    :meth:`update` after every optimiser step; :attr:`updates` counts them (a resumed run restores it).
    """

    def __init__(self, model: nn.Module, *, window: float, total_steps: int) -> None:
        if not 0 < window <= 1:
            raise ValueError(f"the averaging window is a share of the stage's steps in (0, 1], got {window!r}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.time_constant = max(1.0, window * total_steps)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimiser step)."""
        self.updates += 1
        weight = 1.0 / min(self.time_constant, float(self.updates))
        source = model.state_dict()
        averaged, current = [], []
        for key, avg in self.module.state_dict().items():
            value = source[key].detach()
            if avg.is_floating_point():
                averaged.append(avg)
                current.append(value)
            else:
                avg.copy_(value)  # e.g. BatchNorm's num_batches_tracked
        if averaged:
            torch._foreach_lerp_(averaged, current, weight)  # one multi-tensor kernel, as the optimiser's foreach
