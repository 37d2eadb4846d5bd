"""Input modalities: how many frames a segment holds and how many channels reach the network.

This table is the one place both ``offnet.data`` (what to decode and stack) and ``offnet.models``
(the width of the first convolution) read from.

| modality | frames / segment | data channels (C of ``(B, T, C, H, W)``) | first-conv channels |
|----------|------------------|------------------------------------------|---------------------|
| rgb      | 1                | 3                                        | 3                   |
| flow     | 5                | 10, interleaved ``x1, y1, …, x5, y5``    | 10                  |
| rawoff   | 5                | 15, frames stacked ``f1(c0..c2), …, f5``  | 36 (4 pairs × 9)    |
| rgbdiff  | 6                | 18, frames stacked                       | 15 (5 differences)  |

``rawoff`` and ``rgbdiff`` are computed from raw (normalised) frames by a fixed, parameter-free stem
inside the model (see :mod:`offnet.models.stems`), as the authors' code does for RGB difference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Modality", "MODALITIES", "get_modality"]


@dataclass(frozen=True)
class Modality:
    """Facts about one input modality."""

    name: str
    frames_per_segment: int  # consecutive frames read per segment ("new_length")
    kind: str  # "rgb" (colour frames) or "flow" (x/y flow images)
    data_channels: int  # C of the clip tensor the data pipeline produces
    network_channels: int  # input channels of the backbone's first convolution


MODALITIES: dict[str, Modality] = {
    "rgb": Modality("rgb", 1, "rgb", 3, 3),
    "flow": Modality("flow", 5, "flow", 10, 10),
    "rawoff": Modality("rawoff", 5, "rgb", 15, 36),
    "rgbdiff": Modality("rgbdiff", 6, "rgb", 18, 15),
}


def get_modality(name: str) -> Modality:
    """Look a modality up by name; raises ``ValueError`` listing the valid names."""
    try:
        return MODALITIES[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; choose one of {sorted(MODALITIES)}") from None
