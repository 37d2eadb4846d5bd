"""The interface every backbone implements, and the preprocessing facts that travel with it.

A backbone maps a batch of images ``(N, C, H, W)`` to

* a dict of *tapped* feature maps, grouped by scale: ``tap_names[28]`` are the taps at stride 8
  (28×28 for a 224 px input), ``tap_names[14]`` at stride 16 and ``tap_names[7]`` at stride 32 — the
  three scales of the OFF sub-network (paper Sec. 4.1);
* the final feature map ``(N, feature_dim, h, w)`` that the TSN head pools and classifies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["InputSpec", "Backbone", "SCALES", "IMAGENET_SPEC", "CAFFE_BGR_SPEC"]

#: The three OFF scales, named by their spatial size at a 224 px input (strides 8, 16, 32).
SCALES: tuple[int, ...] = (28, 14, 7)


@dataclass(frozen=True)
class InputSpec:
    """How frames must be prepared for a backbone's weights.

    ``scale255`` True means pixel values stay in 0–255 (Caffe weights); otherwise they are divided by
    255 first. ``mean``/``std`` are per channel in the order the network expects (BGR if ``bgr``).
    Flow images (0–255 JPEG values) are normalised with ``flow_mean``/``flow_std`` in the same scale.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    scale255: bool
    size: int = 224
    flow_mean: float = 128.0
    flow_std: float = 1.0

    def mean_std(self, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel ``(mean, std)`` for frames of ``kind``: ``"rgb"`` colour frames or ``"flow"`` images."""
        if kind == "flow":
            return (self.flow_mean,), (self.flow_std,)
        return self.mean, self.std


#: torchvision-style ImageNet weights: RGB in 0–1, ImageNet mean/std.
IMAGENET_SPEC = InputSpec(
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), bgr=False, scale255=False,
    flow_mean=0.5, flow_std=0.226,
)
#: Caffe BN-Inception weights (TSN / OFF): BGR in 0–255, mean [104, 117, 123], no std.
CAFFE_BGR_SPEC = InputSpec(
    mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), bgr=True, scale255=True, flow_mean=128.0, flow_std=1.0
)


class Backbone(nn.Module):
    """Base class: subclasses set the attributes below and implement :meth:`forward`."""

    #: tap names per scale, in the order the OFF unit concatenates them
    tap_names: dict[int, tuple[str, ...]]
    #: channels of each tap
    tap_channels: dict[str, int]
    #: channels of the final feature map
    feature_dim: int
    #: preprocessing facts of the weights this architecture is usually initialised from
    input_spec: InputSpec
    #: state-dict prefix of the first convolution (its input width follows the modality)
    first_conv: str
    #: OFF sub-network defaults suited to this backbone: (reduce channels, width multiplier)
    subnet_defaults: tuple[int, float] = (128, 1.0)
    #: every BatchNorm directly follows a convolution whose output goes nowhere else, so inference may fold it
    #: into that convolution (:mod:`offnet.models.folding`); False for backbones of unknown structure
    foldable_batchnorm: bool = False

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # pragma: no cover
        """``x (N, C, H, W)`` → ``(taps {name: (N, C_tap, H_s, W_s)}, final (N, feature_dim, h, w))``."""
        raise NotImplementedError

    @property
    def all_taps(self) -> tuple[str, ...]:
        return tuple(name for scale in SCALES for name in self.tap_names[scale])
