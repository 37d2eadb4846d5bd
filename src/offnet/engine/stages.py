"""The paper's three training stages: where each lives, where it starts from, and what it optimises.

Paper Sec. 4.3: stage 1 trains the feature-generation network (TSN backbone and its head),
stage 2 trains the OFF sub-network on the frozen backbone, stage 3 fine-tunes everything at a small
learning rate. One run directory holds them all::

    RUN/config.yaml           resolved config
    RUN/log.jsonl             one JSON record per logged step / validation
    RUN/stage1/last.pt        written every ``train.checkpoint_every`` steps and at the end
    RUN/stage1/best.pt        best validation score of the stage (when a validation part exists)
    RUN/stage2/…

Each stage starts from the previous stage's ``best.pt`` (else ``last.pt``); the first stage of a run
starts from the model's initial (or ``pretrained`` / ``--finetune-from``) weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import Config, StageConfig

__all__ = [
    "stage_dir",
    "stage_status",
    "init_checkpoint",
    "stage_total_steps",
    "stage_eval_level",
    "stage_loss",
    "validate_plan",
]


def stage_dir(run_dir: Path, stage: int) -> Path:
    """``RUN/stage{N}``."""
    return Path(run_dir) / f"stage{stage}"


def stage_status(run_dir: Path, stage: int) -> str:
    """``"done"`` (``stage{N}/DONE`` exists), ``"partial"`` (a ``last.pt`` exists) or ``"new"``."""
    directory = stage_dir(run_dir, stage)
    if (directory / "DONE").is_file():
        return "done"
    if (directory / "last.pt").is_file():
        return "partial"
    return "new"


def init_checkpoint(run_dir: Path, stage: int, stages: list[int]) -> Path | None:
    """The checkpoint ``stage`` starts from: the previous planned stage's ``best.pt``, else ``last.pt``.

    ``None`` for the first stage of the plan. Raises ``FileNotFoundError`` if the previous stage left
    no checkpoint (it must have run first).
    """
    index = stages.index(stage)
    if index == 0:
        return None
    previous = stage_dir(run_dir, stages[index - 1])
    for name in ("best.pt", "last.pt"):
        if (previous / name).is_file():
            return previous / name
    raise FileNotFoundError(
        f"stage {stage} starts from stage {stages[index - 1]}, but {previous} holds no best.pt or last.pt; "
        "run the earlier stage first (or set stages to start at this one)"
    )


def stage_total_steps(stage: StageConfig, *, steps_per_epoch: int) -> int:
    """Optimiser steps of a stage: ``epochs × steps_per_epoch`` when epochs is set, else ``iterations``."""
    if stage.epochs is not None:
        return max(1, math.ceil(stage.epochs * steps_per_epoch))
    assert stage.iterations is not None  # Config.validate guarantees one of them
    return stage.iterations


def stage_eval_level(model: torch.nn.Module, stage: int) -> str:
    """The level whose accuracy picks ``best.pt``: the backbone head in stage 1, else the final head."""
    return model.backbone_level if stage == 1 else model.final_level


def stage_loss(
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    levels: tuple[str, ...],
    weights: dict[str, float],
    focal_gamma: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of cross-entropy over ``levels`` (paper Eq. 9, intermediate supervision).

    ``outputs[level]``: ``(B, num_classes)`` logits after consensus; ``labels``: ``(B,)``. ``focal_gamma > 0``
    replaces cross-entropy by the focal loss, which shifts the gradient to the examples still wrong. Levels not in
    ``weights`` get weight 1. Returns ``(total, {level: loss})``; losses are computed in float32 so
    that autocast does not lose precision in the softmax.
    """
    unknown = sorted(set(weights) - set(outputs))
    if unknown:
        raise ValueError(f"loss_weights names unknown level(s) {unknown}; this model's levels: {sorted(outputs)}")
    per_level = {level: _loss(outputs[level].float(), labels, focal_gamma) for level in levels}
    total = sum(weights.get(level, 1.0) * loss for level, loss in per_level.items())
    return total, per_level  # type: ignore[return-value]


def _loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """Cross-entropy, or with ``gamma > 0`` the focal loss ``mean((1 - p_y)^gamma · CE)`` (Lin et al., 2017)."""
    if gamma == 0:
        return F.cross_entropy(logits, labels)
    ce = F.cross_entropy(logits, labels, reduction="none")  # (B,)
    p = torch.exp(-ce)  # probability of the true class
    return ((1.0 - p) ** gamma * ce).mean()


def validate_plan(config: Config, model: torch.nn.Module) -> None:
    """Check the stage plan against the model before any work starts."""
    for stage in config.stages:
        model.loss_levels(stage)  # raises ValueError for tsn beyond stage 1
        unknown = sorted(set(config.stage(stage).loss_weights) - set(model.levels))
        if unknown:
            raise ValueError(
                f"stage{stage}.loss_weights names unknown level(s) {unknown}; valid: {list(model.levels)}"
            )
