"""The hierarchical predicate loss as a training framework, registered as "HierarchicalLoss".

It claims the relation loss (``loss_rel`` becomes the D2 loss over the pairs the
head sampled) and the test-time relation scores (D3, written by
``HierarchicalScores`` into the post-processor). The factorised form adds its head
under ``roi_heads.relation.framework_modules["HierarchicalLoss"]``; the marginal form
adds nothing, so its checkpoints are plain models. When another framework has set the
relation loss's class weights (HML's per-stage class-balanced weights, or a
re-weighting baseline), each pair is weighted by ``w[g]`` in the mean, as in the
weighted cross-entropy they were made for.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.engine.framework import TRAINING_FRAMEWORKS, TrainingFramework
from maskrcnn_benchmark.engine.trainer import StepOutcome
from maskrcnn_benchmark.modeling.roi_heads.relation_head.loss import RelationLossComputation
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch
from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy
from maskrcnn_benchmark.utils.checkpoint import unwrap_model

from .config import HierSettings
from .head import FactorisedHead
from .inference import HierarchicalScores
from .layout import TreeLayout
from .losses import hgr_layer_weights, hierarchical_loss, layer_class_balanced_weights, marginal_log_probs


@TRAINING_FRAMEWORKS.register("HierarchicalLoss")
class HierarchicalLoss(TrainingFramework):
    """D2 loss in training, D3 scores in testing, over the tree of ``HIER.TREE``."""

    name = "HierarchicalLoss"
    claims = frozenset({"relation_loss", "relation_scores"})
    report_file = "hierarchical_loss_report.json"

    def __init__(self, layout: TreeLayout, form: str, layer_weights: Tuple[float, float], tau: float,
                 in_layer_weights: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> None:
        self.layout = layout
        self.form = form
        self.layer_weights = layer_weights
        self.tau = tau
        self.in_layer_weights = in_layer_weights
        self.head: Optional[nn.Module] = None
        self.loss_evaluator: Optional[RelationLossComputation] = None

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "HierarchicalLoss":
        settings = HierSettings.from_config(cfg)
        hierarchy = PredicateHierarchy.from_json(settings.tree, statistics.get("rel_classes"))
        layout = TreeLayout.from_hierarchy(hierarchy)
        in_layer = None
        if settings.class_balanced:
            counts = torch.as_tensor(statistics["fg_matrix"]).sum(dim=(0, 1)).to(torch.float64)
            in_layer = layer_class_balanced_weights(counts, layout, settings.cb_gamma)
        return cls(layout, settings.form, settings.layer_weights or hgr_layer_weights(layout),
                   settings.refine_threshold, in_layer)

    def prepare(self, model: torch.nn.Module) -> None:
        """Add the factorised head (once), keep the loss evaluator for its class weights, install the D3 scores."""
        relation = unwrap_model(model).roi_heads.relation
        self.head = None
        if self.form == "factorised":
            if self.name not in relation.framework_modules:
                device = next(relation.predictor.parameters()).device
                relation.framework_modules[self.name] = FactorisedHead(self.layout).to(device)
            self.head = relation.framework_modules[self.name]
        self.loss_evaluator = relation.loss_evaluator
        relation.post_processor.relation_scores = HierarchicalScores(self.layout, self.tau, self.head)

    def report(self, outcome: StepOutcome) -> Dict[str, Any]:
        """Form, layer weights, the training tau (tools/tune_refine_threshold.py chooses the test one) and
        the last iteration's loss terms."""
        return {"framework": self.name, "form": self.form, "layer_weights": list(self.layer_weights),
                "in_layer_class_balanced": self.in_layer_weights is not None, "refine_threshold": self.tau,
                "class_weights_from_another_framework": getattr(self.loss_evaluator, "rel_class_weights", None)
                is not None, "final_losses": dict(outcome.losses)}

    def log_probs(self, logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log P1, log P2)`` of the configured form for (N, R) predictor logits."""
        return self.head(logits) if self.head is not None else marginal_log_probs(logits, self.layout)

    def relation_losses(self, batch: RelationBatch, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``loss_rel`` replaced by the D2 loss of the batch's sampled pairs."""
        logits = torch.cat(list(batch.rel_logits), dim=0)
        labels = torch.cat(list(batch.rel_labels), dim=0)
        log_p1, log_p2 = self.log_probs(logits)
        node_weights, child_weights = self.in_layer_weights or (None, None)
        class_weights = self.loss_evaluator.rel_class_weights if self.loss_evaluator is not None else None
        losses["loss_rel"] = hierarchical_loss(log_p1, log_p2, labels, self.layout, self.layer_weights,
                                               class_weights, node_weights, child_weights)
        return losses
