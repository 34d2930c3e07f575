"""``build_detection_model``: the model named by MODEL.META_ARCHITECTURE."""
from typing import Any, Mapping, Optional

from torch import nn

from .generalized_rcnn import GeneralizedRCNN

_DETECTION_META_ARCHITECTURES = {"GeneralizedRCNN": GeneralizedRCNN}


def build_detection_model(cfg, statistics: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """The model; ``statistics`` (the relation head's frequency statistics and class names) default to
    the training set's, and are passed by a self-contained model file that has no dataset."""
    name = cfg.MODEL.META_ARCHITECTURE
    if name not in _DETECTION_META_ARCHITECTURES:
        raise KeyError(f"Unknown MODEL.META_ARCHITECTURE {name!r}; available: {sorted(_DETECTION_META_ARCHITECTURES)}")
    return _DETECTION_META_ARCHITECTURES[name].from_config(cfg, statistics)
