"""Classification metrics for video-level scores: top-k, mean class accuracy, confusion matrix.

All functions take numpy arrays: ``scores`` of shape ``(N, K)`` (one row of logits or probabilities per
video, ``K`` classes) and integer ``labels`` of shape ``(N,)``. OFF and TSN report the *mean class
accuracy* (the mean of the per-class recalls); offnet reports it next to the overall top-1.

Ties are broken towards the lower class index, as :func:`numpy.argmax` does, so top-1 of
:func:`topk_accuracy` and the prediction of :func:`confusion_matrix` always agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import save_figure

__all__ = [
    "ClassificationMetrics",
    "check_scores",
    "topk_predictions",
    "topk_accuracy",
    "confusion_matrix",
    "per_class_accuracy",
    "mean_class_accuracy",
    "compute_metrics",
    "plot_confusion",
]

logger = logging.getLogger(__name__)


def check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(scores (N, K) float64, labels (N,) int64)``.

    Raises ``ValueError`` for a shape mismatch, an empty set, non-finite scores or a label outside
    ``[0, K)``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, num_classes), got shape {scores.shape}")
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"labels must have shape (N,) with N = {scores.shape[0]} (rows of scores), got {labels.shape}"
        )
    if scores.shape[0] == 0:
        raise ValueError("no videos to score: scores has 0 rows")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
        raise ValueError(f"scores contain NaN/inf (first at row {bad}); check the model output")
    num_classes = scores.shape[1]
    out_of_range = (labels < 0) | (labels >= num_classes)
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(
            f"label {int(labels[i])} at row {i} is outside [0, {num_classes}) for {num_classes}-class scores"
        )
    return scores, labels.astype(np.int64)


def topk_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest-scoring class indices per row, best first: ``(N, min(k, K))``.

    ``k`` is clipped to the number of classes (top-5 of a 2-class problem is top-2).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    # A stable sort of the negated scores keeps the lower index first among equal scores.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` best classes (``k`` clipped to ``K``)."""
    scores, labels = check_scores(scores, labels)
    top = topk_predictions(scores, k)
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(K, K)`` int64 counts: row = true class, column = predicted (arg-max) class."""
    scores, labels = check_scores(scores, labels)
    num_classes = scores.shape[1]
    predicted = scores.argmax(axis=1)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix: ``(K,)`` float64, NaN for a class with no videos."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square (K, K), got shape {matrix.shape}")
    support = matrix.sum(axis=1).astype(np.float64)
    hits = np.diag(matrix).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / np.where(support > 0, support, 1.0), np.nan)


def mean_class_accuracy(matrix: np.ndarray) -> float:
    """Mean of the per-class recalls over the classes that have at least one video.

    This is the number OFF and TSN report as "accuracy" (``np.mean(cls_hit / cls_cnt)`` in their test
    scripts); classes absent from the evaluated set are left out rather than counted as 0.
    """
    acc = per_class_accuracy(matrix)
    present = ~np.isnan(acc)
    if not present.any():
        raise ValueError("the confusion matrix is empty: no class has any video")
    return float(acc[present].mean())


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics of one set of video scores.

    ``top5`` is top-``top5_k`` accuracy with ``top5_k = min(5, K)``. ``per_class`` maps class name to
    its recall, ``None`` for a class without videos. ``confusion`` is the ``(K, K)`` count matrix.
    """

    top1: float
    top5: float
    top5_k: int
    mean_class_accuracy: float
    per_class: dict[str, float | None]
    num_videos: int
    confusion: np.ndarray = field(repr=False)

    def to_dict(self, *, include_confusion: bool = False) -> dict[str, Any]:
        """JSON-ready dict (plain floats; the confusion matrix as nested lists only if asked)."""
        out: dict[str, Any] = {
            "top1": self.top1,
            "top5": self.top5,
            "top5_k": self.top5_k,
            "mean_class_accuracy": self.mean_class_accuracy,
            "num_videos": self.num_videos,
            "per_class_accuracy": dict(self.per_class),
        }
        if include_confusion:
            out["confusion"] = self.confusion.tolist()
        return out


def compute_metrics(
    scores: np.ndarray, labels: np.ndarray, class_names: list[str] | tuple[str, ...]
) -> ClassificationMetrics:
    """Top-1, top-5 (k clipped), mean class accuracy, per-class accuracy and confusion of ``scores``.

    Args:
        scores: ``(N, K)`` video scores (logits or probabilities; only their order matters).
        labels: ``(N,)`` integer labels in ``[0, K)``.
        class_names: ``K`` names, index = label.
    """
    scores, labels = check_scores(scores, labels)
    if len(class_names) != scores.shape[1]:
        raise ValueError(
            f"{len(class_names)} class names given for {scores.shape[1]}-class scores; they must match"
        )
    matrix = confusion_matrix(scores, labels)
    acc = per_class_accuracy(matrix)
    per_class = {
        str(name): (None if math.isnan(value) else float(value)) for name, value in zip(class_names, acc)
    }
    return ClassificationMetrics(
        top1=topk_accuracy(scores, labels, 1),
        top5=topk_accuracy(scores, labels, 5),
        top5_k=min(5, scores.shape[1]),
        mean_class_accuracy=mean_class_accuracy(matrix),
        per_class=per_class,
        num_videos=int(scores.shape[0]),
        confusion=matrix,
    )


def plot_confusion(
    matrix: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    path: str | Path,
    *,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Path:
    """Write the confusion matrix as a PNG heat map and return the path.

    Rows are true classes, columns predicted ones; with ``normalize`` each row is divided by its count
    (rows of absent classes stay 0). The figure grows with the number of classes and drops tick labels
    and cell numbers where they would overlap, so it stays readable from 2 to 101 classes.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless; must precede pyplot's import in this process
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    num_classes = len(class_names)
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(
            f"confusion matrix shape {matrix.shape} does not match {num_classes} class names"
        )
    values = matrix.astype(np.float64)
    if normalize:
        support = values.sum(axis=1, keepdims=True)
        values = np.divide(values, support, out=np.zeros_like(values), where=support > 0)

    side = float(np.clip(2.0 + 0.22 * num_classes, 4.0, 24.0))
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    try:
        image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        font = float(np.clip(12 - num_classes / 10, 4, 10))
        ticks = np.arange(num_classes)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels([str(n) for n in class_names], rotation=90, fontsize=font)
        ax.set_yticklabels([str(n) for n in class_names], fontsize=font)
        if num_classes <= 20:
            # Cell annotations only while they fit inside the cells.
            threshold = values.max() / 2 if values.size else 0.0
            for i in range(num_classes):
                for j in range(num_classes):
                    text = f"{values[i, j]:.2f}" if normalize else str(int(matrix[i, j]))
                    colour = "white" if values[i, j] > threshold else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=font, color=colour)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
        fig.tight_layout()
        path = save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)
    logger.debug("wrote confusion matrix to %s", path)
    return path
