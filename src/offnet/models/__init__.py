"""Models: backbones, the OFF operator, the OFF sub-network and the TSN / OFF / Hyp-Net recognizers."""

from ._registry import BACKBONES, create_model, list_backbones, list_models, register_backbone
from .backbone import SCALES, Backbone, InputSpec
from .fusion import fuse_scores
from .networks import ActionRecognizer
from .off import OFFOperator, sobel_xy, temporal_difference
from .weights import load_backbone_weights, load_state_dict_checked, read_state_dict

__all__ = [
    "SCALES", "Backbone", "InputSpec", "BACKBONES", "create_model", "list_backbones", "list_models",
    "register_backbone",
    "fuse_scores", "ActionRecognizer", "OFFOperator", "sobel_xy", "temporal_difference",
    "load_backbone_weights", "load_state_dict_checked", "read_state_dict",
]
