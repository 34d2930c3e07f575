"""``build_detection_model``: the model named by MODEL.META_ARCHITECTURE."""
from torch import nn

from .generalized_rcnn import GeneralizedRCNN

_DETECTION_META_ARCHITECTURES = {"GeneralizedRCNN": GeneralizedRCNN}


def build_detection_model(cfg) -> nn.Module:
    name = cfg.MODEL.META_ARCHITECTURE
    if name not in _DETECTION_META_ARCHITECTURES:
        raise KeyError(f"Unknown MODEL.META_ARCHITECTURE {name!r}; available: {sorted(_DETECTION_META_ARCHITECTURES)}")
    return _DETECTION_META_ARCHITECTURES[name].from_config(cfg)
