"""Iteration-based learning-rate schedules with optional linear warm-up.

``lr_at(step)`` gives the base learning rate for the optimiser step ``step`` (0-based); each
parameter group then uses ``base × lr_mult``.

* ``multistep`` (paper, Sec. 5.1): ``lr · gamma^k`` where ``k`` = number of milestones ``<= step``.
* ``cosine`` (the authors' Caffe solver): warm restarts of equal length
  ``cycle = ceil(total / num_cycles)``; ``lr · ½ · (1 + cos(π · (step mod cycle) / cycle))``.
* ``constant``.

Warm-up multiplies the schedule by a factor rising linearly from ``warmup_factor`` to 1 over
``warmup_iters`` steps.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer

__all__ = ["LRSchedule"]


class LRSchedule:
    """Sets ``group["lr"] = lr_at(step) * group["lr_mult"]`` on every optimiser step.

    The only state is the step counter, so ``state_dict()`` / ``load_state_dict()`` make a resumed
    run see exactly the learning rates of an uninterrupted one.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        base_lr: float,
        total_steps: int,
        kind: str = "multistep",
        milestones: list[int] | tuple[int, ...] = (),
        gamma: float = 0.1,
        num_cycles: int = 1,
        warmup_iters: int = 0,
        warmup_factor: float = 0.1,
    ) -> None:
        if kind not in ("multistep", "cosine", "constant"):
            raise ValueError(f"unknown schedule {kind!r}; choose multistep, cosine or constant")
        if total_steps < 1 or num_cycles < 1:
            raise ValueError(f"total_steps ({total_steps}) and num_cycles ({num_cycles}) must be >= 1")
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.total_steps = total_steps
        self.kind = kind
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.num_cycles = num_cycles
        self.cycle = math.ceil(total_steps / num_cycles)
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        """Base learning rate of optimiser step ``step`` (0-based)."""
        if self.kind == "multistep":
            lr = self.base_lr * self.gamma ** sum(1 for m in self.milestones if step >= m)
        elif self.kind == "cosine":
            lr = self.base_lr * 0.5 * (1.0 + math.cos(math.pi * (step % self.cycle) / self.cycle))
        else:
            lr = self.base_lr
        if step < self.warmup_iters:
            alpha = step / self.warmup_iters
            lr *= self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        return lr

    def _apply(self) -> None:
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)

    @property
    def current_lr(self) -> float:
        return self.lr_at(self.step_count)

    def step(self) -> None:
        """Advance to the next optimiser step (call after ``optimizer.step()``)."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self._apply()
