"""Detector builders: ``from maskrcnn_benchmark.modeling.detector import build_detection_model``."""
from .detectors import build_detection_model
from .generalized_rcnn import GeneralizedRCNN

__all__ = ["GeneralizedRCNN", "build_detection_model"]
