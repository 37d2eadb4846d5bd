"""Live scoring that reuses work: a sliding window of segments, updated one new segment at a time.

OFF is built from per-segment features and the differences of consecutive ones (paper Sec. 3, Eq. 5–7):
the OFF of the pair (t, t+1) depends only on segments t and t+1. A full forward of a window of W segments
runs the backbone W times and the OFF sub-network on W−1 pairs; when the window slides by one segment,
W−1 backbone passes and W−2 pairs are the same as before. :class:`LiveScorer` keeps, in ring buffers,

* each recent segment's per-tap OFF state (the 1×1-reduced feature of every tapped layer, see
  :meth:`~offnet.models.off.OFFOperator.segment_state`) — only the newest one is needed for the next pair;
* the per-segment logits of the backbone head and the per-pair logits of every sub-network head;

and for each new segment runs **one backbone pass and one OFF pair**. The consensus (the mean over the
window's segments / pairs, Eq. 8) is kept as a running sum: the new logits are added and those that fall
out of the window subtracted (in float64, so sliding for hours does not drift). The scores equal
``model(window)`` up to float rounding; ``tests/models/test_live.py`` checks it.

TSN (backbone head only) and Hyp-Net (per-segment sub-network) are supported the same way.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import nn

from .backbone import SCALES

__all__ = ["LiveScorer"]


class _RunningMean:
    """Mean of the last ``size`` pushed ``(B, K)`` tensors, updated in O(1) per push."""

    def __init__(self, size: int) -> None:
        self.items: deque[torch.Tensor] = deque()
        self.size = size
        self.total: torch.Tensor | None = None

    def push(self, value: torch.Tensor) -> None:
        value = value.double()
        self.total = value.clone() if self.total is None else self.total + value
        self.items.append(value)
        if len(self.items) > self.size:
            self.total = self.total - self.items.popleft()  # the oldest leaves the window

    def mean(self) -> torch.Tensor:
        assert self.total is not None, "mean of an empty window"
        return self.total / len(self.items)


class LiveScorer:
    """Scores of the last ``window`` segments of one or more streams, one segment at a time.

    Args:
        model: an offnet :class:`~offnet.models.networks.ActionRecognizer` (``tsn``, ``off`` or ``hypnet``);
            it is put in eval mode (dropout off, BatchNorm statistics fixed), where per-segment work is
            independent of the rest of the window.
        window: segments in the sliding window (T of ``model(x (B, T, C, H, W))``); OFF needs at least 2.

    ``push(segment)`` takes the newest segment ``(C, H, W)`` or ``(B, C, H, W)`` (B parallel streams, C the
    modality's channels per segment, already normalised) and returns ``{level: (B, K)}`` logits of the
    current window, float32 — equal to ``model(last_segments)`` — or ``None`` while the window holds too few
    segments to score (1 for OFF, which needs a pair).
    """

    def __init__(self, model: nn.Module, *, window: int) -> None:
        if model.arch == "off" and window < 2:
            raise ValueError(f"the OFF network needs a window of at least 2 segments, got {window}")
        if window < 1:
            raise ValueError(f"window must be at least 1 segment, got {window}")
        self.model = model.eval()
        self.window = window
        self.reset()

    def reset(self) -> None:
        """Forget every segment (a new stream, or a cut)."""
        self.segments_seen = 0
        self._last_state: dict[str, tuple[torch.Tensor, ...]] | None = None
        n_sub = self.window - 1 if self.model.arch == "off" else self.window
        self._means = {self.model.backbone_level: _RunningMean(self.window)}
        self._means.update({level: _RunningMean(n_sub) for level in self.model.subnet_levels})

    @property
    def ready(self) -> bool:
        """Whether :meth:`push` returns scores (OFF: after the second segment)."""
        return self.segments_seen >= (2 if self.model.arch == "off" else 1)

    @torch.no_grad()
    def push(self, segment: torch.Tensor) -> dict[str, torch.Tensor] | None:
        model = self.model
        x = segment.unsqueeze(0) if segment.dim() == 3 else segment  # (B, C, H, W)
        if x.dim() != 4 or x.shape[1] != model.modality.data_channels:
            raise ValueError(f"a segment is (C, H, W) or (B, C, H, W) with C={model.modality.data_channels} for "
                             f"modality {model.modality.name!r}, got {tuple(segment.shape)}")
        frames = model.stem(x)  # (B, C', H, W)
        taps, final = model.backbone(frames)  # the one backbone pass of this segment
        pooled = final.mean(dim=(2, 3))  # (B, D)
        self._means[model.backbone_level].push(model.heads[model.backbone_level](pooled))  # (B, K)
        if model.subnet is not None:
            self._push_subnet(taps)
        self.segments_seen += 1
        if not self.ready:
            return None
        return {level: mean.mean().float() for level, mean in self._means.items() if mean.items}

    def _push_subnet(self, taps: dict[str, torch.Tensor]) -> None:
        model = self.model
        ops = {tap: model.tap_ops[tap.replace(".", "_")] for tap in model.backbone.all_taps}
        if model.arch == "hypnet":  # per segment: the reduced features themselves
            inputs = {s: [ops[t](taps[t]) for t in model.backbone.tap_names[s]] for s in SCALES}
        else:
            state = {t: ops[t].segment_state(taps[t]) for t in model.backbone.all_taps}
            previous, self._last_state = self._last_state, state
            if previous is None:
                return  # the first segment of the stream: no pair yet
            # the one OFF pair of this segment: (previous, newest) at every tap → (B, P, h, w)
            inputs = {s: [ops[t].pair(previous[t], state[t]) for t in model.backbone.tap_names[s]] for s in SCALES}
        for level, logits in model.subnet(inputs).items():
            self._means[level].push(logits)  # (B, K)
