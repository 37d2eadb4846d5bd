"""offnet: Optical Flow Guided Feature (Sun et al., CVPR 2018) for video action recognition."""

from __future__ import annotations

__version__ = "0.1.0"
