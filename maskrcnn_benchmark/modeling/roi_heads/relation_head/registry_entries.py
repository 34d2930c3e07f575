"""Registers the relation predictors under the benchmark's names (MODEL.ROI_RELATION_HEAD.PREDICTOR)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from maskrcnn_benchmark.modeling.registry import ROI_RELATION_PREDICTOR

from .causal_predictor import CausalAnalysisPredictor
from .roi_relation_predictors import IMPPredictor, MotifPredictor, TransformerPredictor, VCTreePredictor

for _predictor in (MotifPredictor, VCTreePredictor, TransformerPredictor, IMPPredictor, CausalAnalysisPredictor):
    ROI_RELATION_PREDICTOR.register(_predictor.__name__, _predictor)



def make_roi_relation_predictor(cfg, in_channels: int, statistics: Mapping[str, Any]) -> nn.Module:
    """The predictor named by MODEL.ROI_RELATION_HEAD.PREDICTOR, built from the config and the
    dataset statistics (``obj_classes``, ``rel_classes``, ``pred_dist``)."""
    return ROI_RELATION_PREDICTOR[cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR].from_config(cfg, in_channels, statistics)
