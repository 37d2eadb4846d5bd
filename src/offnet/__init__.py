"""offnet: Optical Flow Guided Feature (Sun et al., CVPR 2018) for video action recognition.

>>> import offnet
>>> model = offnet.create_model("off", num_classes=101, modality="rgb", backbone="bninception")
>>> scores = model(clips)              # clips (B, T, C, H, W) -> {"rgb": …, "off28": …, "off14": …, "off7": …}
>>> fused = offnet.fuse_scores(scores, {"rgb": 1.0, "off7": 1.0})
"""

from __future__ import annotations

from .modalities import MODALITIES, get_modality
from .models import Backbone, InputSpec, create_model, fuse_scores, list_backbones, list_models, register_backbone
from .tools.predict import Prediction, Predictor

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "list_backbones", "register_backbone", "Backbone", "InputSpec",
           "fuse_scores", "MODALITIES", "get_modality",
           "Predictor", "Prediction", "__version__"]
