"""Hierarchical predicate loss (HIERARCHY.md D2-D3, a proposal): two-layer loss and refine-or-coarse inference.

"HierarchicalLoss" replaces the relation loss with w1 (-log P1) + w2 (-log P2) over a
fine -> coarse predicate tree (coarse-annotated and background pairs: the layer-1
term only) and scores relations at test time by the D3 rule. Settings: ``HIER.*``.
"""
from maskrcnn_benchmark.config import cfg as _default_cfg

from .config import HierSettings, add_hier_config
from .framework import HierarchicalLoss
from .head import FactorisedHead
from .inference import HierarchicalScores, d3_labels, d3_scores
from .layout import TreeLayout
from .losses import (group_log_softmax, hgr_layer_weights, hierarchical_loss, layer_class_balanced_weights,
                     marginal_log_probs)

add_hier_config(_default_cfg)

__all__ = ["FactorisedHead", "HierSettings", "HierarchicalLoss", "HierarchicalScores", "TreeLayout",
           "add_hier_config", "d3_labels", "d3_scores", "group_log_softmax", "hgr_layer_weights",
           "hierarchical_loss", "layer_class_balanced_weights", "marginal_log_probs"]
