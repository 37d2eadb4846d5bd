"""Helpers and fixtures of the evaluation tests (imported explicitly; tests/engine/conftest.py is the
trainer's).

* :func:`make_result` builds an :class:`EvalResult` from literal score tables.
* :class:`ToySegmentModel` follows the offnet model API with per-segment logits that a test can compute
  by hand: the logit of class ``k`` for one frame is the mean of channel ``k`` of the frame.
* :func:`ucf_mini` writes a 2-class miniature dataset in UCF-101 layout (short generated videos).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from offnet.engine.evaluate import EvalResult

__all__ = ["make_result", "ToySegmentModel", "ConsensusOnlyToy", "write_ucf_mini"]


def make_result(
    scores: dict[str, list[list[float]]],
    labels: list[int],
    names: list[str],
    *,
    class_names: tuple[str, ...] = ("a", "b"),
    backbone_level: str = "rgb",
    final_level: str = "off7",
    modality: str = "rgb",
    subset: str = "test",
    split: int = 1,
) -> EvalResult:
    return EvalResult(
        scores={level: np.asarray(s, dtype=np.float32) for level, s in scores.items()},
        labels=np.asarray(labels, dtype=np.int64),
        names=tuple(names),
        class_names=class_names,
        backbone_level=backbone_level,
        final_level=final_level,
        meta={"modality": modality, "subset": subset, "split": split},
    )


class ToySegmentModel(nn.Module):
    """Parameter-light stand-in for an OFF model: ``(B, T, C, H, W)`` → per-level logits.

    * level ``"rgb"`` (backbone): per segment, logit ``k`` = mean of channel ``k`` → ``(B, T, K)``;
    * level ``"off7"``: per consecutive pair, the backbone logits of the later minus the earlier
      segment → ``(B, T-1, K)``.

    ``forward(x, consensus=True)`` averages over segments/pairs, as the offnet model API does.
    ``K = C`` (one class per channel), so it works for 3-channel RGB clips.
    """

    levels = ("rgb", "off7")
    backbone_level = "rgb"
    final_level = "off7"

    def __init__(self, *, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))  # so .to(device) and .eval() act on something
        self.config = {"name": "toy", "num_classes": num_classes}

    def forward(self, x: torch.Tensor, consensus: bool = True) -> dict[str, torch.Tensor]:
        B, T, C, H, W = x.shape
        per_segment = x[:, :, : self.num_classes].mean(dim=(3, 4)) * self.scale  # (B, T, K)
        pairs = per_segment[:, 1:] - per_segment[:, :-1]  # (B, T-1, K)
        out = {"rgb": per_segment, "off7": pairs}
        if consensus:
            out = {level: logits.mean(dim=1) for level, logits in out.items()}
        return out


class ConsensusOnlyToy(ToySegmentModel):
    """The same model without the ``consensus`` keyword (only consensus logits)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return super().forward(x, consensus=True)



def write_ucf_mini(root: Path, *, size: tuple[int, int] = (96, 72), frames: int = 40) -> Path:
    """Write a 2-class UCF-101-style tree and return ``root``.

    ``root/videos/<Class>/v_<Class>_gXX_cYY.avi`` (MJPG, ``size`` W×H, ``frames`` frames), plus
    ``root/splits/classInd.txt``, ``trainlist01.txt`` and ``testlist01.txt``. Class ``Bright`` videos
    are light with a moving bar, class ``Dark`` videos dark: a trained or hand-built model can tell them
    apart.
    """
    import cv2

    classes = ("Bright", "Dark")
    root = Path(root)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    train, test = [], []
    rng = np.random.default_rng(0)
    w, h = size
    for ci, cls in enumerate(classes):
        folder = root / "videos" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for group in (1, 2, 8, 9):
            name = f"v_{cls}_g{group:02d}_c01"
            path = folder / f"{name}.avi"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
            base = 200 if ci == 0 else 40
            for t in range(frames):
                frame = np.full((h, w, 3), base, np.uint8)
                frame += rng.integers(0, 10, size=frame.shape, dtype=np.uint8)
                x = (3 * t) % w
                frame[:, x : x + 6] = 255 - base
                writer.write(frame)
            writer.release()
            rel = f"{cls}/{name}.avi"
            (train if group < 8 else test).append((rel, ci + 1))
    (root / "splits" / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    (root / "splits" / "trainlist01.txt").write_text("".join(f"{r} {lab}\n" for r, lab in train))
    (root / "splits" / "testlist01.txt").write_text("".join(f"{r}\n" for r, _ in test))
    return root
