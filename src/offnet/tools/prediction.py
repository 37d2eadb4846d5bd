"""The scores of one video, as :class:`~offnet.tools.predict.Predictor` and the batch scorer return them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """Scores of one video: raw logits per level and the softmax of the fused score.

    The fused score is the paper's plain sum of the backbone level and the model's final level
    (``rgb`` + ``off7`` for OFF), or the backbone level alone for TSN.
    """

    video: str
    levels: dict[str, np.ndarray]
    probabilities: np.ndarray
    class_names: tuple[str, ...]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.class_names[i], float(self.probabilities[i])) for i in order]
