"""Helpers and fixtures of the evaluation tests (imported explicitly; tests/engine/conftest.py is the
trainer's).

* :func:`make_result` builds an :class:`EvalResult` from literal score tables.
* :class:`ToySegmentModel` follows the offnet model API with per-segment logits that a test can compute
  by hand: the logit of class ``k`` for one frame is the mean of channel ``k`` of the frame.
* :func:`write_ucf_mini` writes a 2-class miniature dataset in UCF-101 layout (short generated videos);
  :func:`write_tiny_checkpoint` a checkpoint of an untrained tiny-backbone model that points at it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from offnet.engine.evaluate import EvalResult

__all__ = ["make_result", "ToySegmentModel", "ConsensusOnlyToy", "write_ucf_mini", "write_tiny_checkpoint"]


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



def write_ucf_mini(root: Path, *, videos_per_class: int = 4, num_frames: int = 16) -> Path:
    """A 2-class miniature dataset in UCF-101 layout (the synthetic benchmark's appearance classes,
    64 px, ``videos_per_class`` clips each: one test group per class, the rest train)."""
    from offnet.data.synth import write_synthetic_dataset

    return write_synthetic_dataset(
        Path(root), classes=["StillBlock", "WanderingBall"], videos_per_class=videos_per_class, size=64,
        num_frames=num_frames, progress=False,
    )


def write_tiny_checkpoint(path: Path, data_root: Path, *, name: str = "off", val_fraction: float = 0.5,
                          seed: int = 0, flip_map: dict[str, str] | str | None = None) -> Path:
    """A checkpoint of an untrained tiny-backbone model whose run config points at ``data_root``."""
    import offnet
    from offnet.engine.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = offnet.create_model(name, num_classes=2, backbone="tiny", dropout=0.0)
    config = {
        "seed": seed,
        "model": {"name": name, "backbone": "tiny", "modality": "rgb"},
        "data": {"dataset": "synth", "root": str(data_root), "split": 1, "frames_root": None,
                 "sampler": "off", "num_segments": 3, "test_segments": 3, "size": 64, "resize_to": None,
                 "val_fraction": val_fraction, "on_bad_video": "fail", "flip": True, "train_list": None,
                 "test_list": None, "class_file": None, "flip_map": flip_map},
    }
    save_checkpoint(path, {
        "model_config": model.config, "model": model.state_dict(),
        "class_names": ["StillBlock", "WanderingBall"], "config": config, "stage": 2, "step": 7,
    })
    return path
