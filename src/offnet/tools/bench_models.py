"""Model speed, measured side by side: every architecture is timed in the same loop, interleaved,
so the ratios between them hold even on a shared, noisy machine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..engine.evaluate import for_inference
from ..modalities import get_modality
from ..models import create_model

__all__ = ["ModelBenchResult", "bench_models", "format_model_results"]


@dataclass(frozen=True)
class ModelBenchResult:
    """Median seconds per call of one architecture, and what that means in clips and frames per second."""

    arch: str
    modality: str
    backbone: str
    mode: str  # "inference" (no_grad forward) or "train" (forward + backward + SGD step)
    batch: int
    segments: int
    seconds: float  # median over repeats
    seconds_all: tuple[float, ...]

    @property
    def clips_per_s(self) -> float:
        return self.batch / self.seconds

    @property
    def frames_per_s(self) -> float:
        return self.batch * self.segments * get_modality(self.modality).frames_per_segment / self.seconds


def bench_models(*, archs: Sequence[str] = ("tsn", "hypnet", "off"), modality: str = "rgb",
                 backbone: str = "bninception", segments: int = 25, size: int | None = None, batch: int = 1,
                 repeats: int = 3, warmup: int = 1, mode: str = "inference", device: str = "cpu",
                 num_classes: int = 101) -> list[ModelBenchResult]:
    """Time one call per architecture per repeat, round-robin, and return the medians.

    ``mode="train"`` times a full training step of the stage that trains the most (stage 1 for tsn,
    stage 3 otherwise).
    """
    if mode not in ("inference", "train"):
        raise ValueError(f"mode must be 'inference' or 'train', got {mode!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    torch.manual_seed(0)
    models = {a: create_model(a, num_classes=num_classes, modality=modality, backbone=backbone).to(dev)
              for a in archs}
    side = size or next(iter(models.values())).input_spec.size
    x = torch.randn(batch, segments, get_modality(modality).data_channels, side, side, device=dev)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    steps = {}
    for arch, model in models.items():
        if mode == "inference":
            steps[arch] = _inference_step(for_inference(model, dev), x)  # as offnet test scores
        else:
            stage = 1 if model.subnet is None else 3
            model.set_stage(stage, partial_bn=True)
            model.train()
            steps[arch] = _train_step(model, x, y, stage)
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {a: [] for a in archs}
    for _ in range(repeats):
        for arch, step in steps.items():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times[arch].append(time.perf_counter() - t0)
    return [ModelBenchResult(arch=a, modality=modality, backbone=backbone, mode=mode, batch=batch,
                             segments=segments, seconds=statistics.median(t), seconds_all=tuple(t))
            for a, t in times.items()]


def _inference_step(model: torch.nn.Module, x: torch.Tensor):
    def step() -> None:
        with torch.no_grad():
            model(x)
    return step


def _train_step(model, x: torch.Tensor, y: torch.Tensor, stage: int):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step() -> None:
        out = model(x)
        loss = sum(torch.nn.functional.cross_entropy(out[k], y) for k in model.loss_levels(stage))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def format_model_results(results: Sequence[ModelBenchResult]) -> str:
    """A table with the ratio of each architecture's time to the first one's (measured in the same run)."""
    base = results[0]
    lines = [
        f"{base.mode}, backbone {base.backbone}, modality {base.modality}, batch {base.batch} x "
        f"{base.segments} segments; median of {len(base.seconds_all)} interleaved repeats",
        f"{'model':<8} {'s/call':>8} {'clips/s':>9} {'frames/s':>9} {'time vs ' + base.arch:>12}",
    ]
    for r in results:
        lines.append(f"{r.arch:<8} {r.seconds:>8.3f} {r.clips_per_s:>9.2f} {r.frames_per_s:>9.1f} "
                     f"{r.seconds / base.seconds:>11.2f}x")
    return "\n".join(lines)
