"""Relation head: pair sampling, union features, context predictors, losses and post-processing."""
from .relation_head import ROIRelationHead, build_roi_relation_head

__all__ = ["ROIRelationHead", "build_roi_relation_head"]
