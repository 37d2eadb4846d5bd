"""Live OFF's saving, measured side by side: per new segment, the incremental :class:`LiveScorer` (one backbone
pass and one OFF pair) against a full forward of the whole window, timed alternately in one loop so that the
ratio holds on a busy machine, and their scores compared at every step."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..engine.evaluate import for_inference
from ..models import create_model
from ..models.live import LiveScorer

__all__ = ["LiveBenchResult", "bench_live", "format_live_result"]


@dataclass(frozen=True)
class LiveBenchResult:
    """Median seconds per new segment of the incremental scorer and of a full recompute of the window."""

    arch: str
    backbone: str
    modality: str
    window: int
    size: int
    streams: int
    device: str
    incremental_s: float
    full_s: float
    max_difference: float  # largest |incremental − full| over every level and step
    steps: int

    @property
    def speedup(self) -> float:
        return self.full_s / self.incremental_s


def _timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def bench_live(*, arch: str = "off", backbone: str = "bninception", modality: str = "rgb", window: int = 25,
               size: int | None = None, streams: int = 1, repeats: int = 10, warmup: int = 2, device: str = "cpu",
               num_classes: int = 101, seed: int = 0) -> LiveBenchResult:
    """Fill a window of ``window`` random segments, then for ``warmup + repeats`` new segments time
    ``scorer.push(segment)`` and ``model(last window)`` back to back (alternating which goes first)."""
    if repeats < 1 or warmup < 0 or streams < 1:
        raise ValueError(f"repeats and streams must be >= 1 and warmup >= 0, got {repeats}, {streams}, {warmup}")
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = for_inference(create_model(arch, num_classes=num_classes, modality=modality, backbone=backbone), dev)
    side = size or model.input_spec.size
    scorer = LiveScorer(model, window=window)
    g = torch.Generator().manual_seed(seed)
    steps = warmup + repeats
    stream = torch.randn(streams, window + steps, model.modality.data_channels, side, side, generator=g).to(dev)
    for t in range(window):
        scorer.push(stream[:, t])
    inc, full, diff = [], [], 0.0
    with torch.no_grad():
        for step in range(steps):
            t = window + step
            order = ("inc", "full") if step % 2 == 0 else ("full", "inc")
            for which in order:
                if which == "inc":
                    live, seconds = _timed(lambda t=t: scorer.push(stream[:, t]), dev)
                    inc.append(seconds)
                else:
                    ref, seconds = _timed(lambda t=t: model(stream[:, t + 1 - window : t + 1]), dev)
                    full.append(seconds)
            diff = max(diff, max(float((live[k] - ref[k]).abs().max()) for k in ref))
    return LiveBenchResult(arch=arch, backbone=backbone, modality=modality, window=window, size=side,
                           streams=streams, device=str(dev), incremental_s=statistics.median(inc[warmup:]),
                           full_s=statistics.median(full[warmup:]), max_difference=diff, steps=repeats)


def format_live_result(r: LiveBenchResult) -> str:
    pairs = f" + {r.window - 1} OFF pairs" if r.arch == "off" else ""
    return "\n".join([
        f"live {r.arch} ({r.backbone}, {r.modality}, {r.size} px), window {r.window} segments, {r.streams} "
        f"stream(s), {r.device}, median of {r.steps} new segments",
        f"  incremental (1 backbone pass{' + 1 OFF pair' if r.arch == 'off' else ''}): "
        f"{1000 * r.incremental_s:9.2f} ms per new segment",
        f"  full recompute ({r.window} backbone passes{pairs}): {1000 * r.full_s:9.2f} ms per new segment",
        f"  speed-up {r.speedup:.1f}x; max |incremental - full| = {r.max_difference:.1e}",
    ])
