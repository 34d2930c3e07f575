"""Relation and object-refinement losses of the relation head (REFERENCE 3.10)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from maskrcnn_benchmark.structures.bounding_box import BoxList


def label_smoothing_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Cross-entropy against targets of ``1 - e`` on the label and ``e / (C - 1)`` elsewhere.

    This is the benchmark's label smoothing (``LABEL_SMOOTHING_LOSS``), which
    spreads ``e`` over the other classes only (PyTorch's ``label_smoothing``
    spreads it over all classes).
    """
    num_classes = logits.shape[-1]
    target = torch.full_like(logits, epsilon / (num_classes - 1))
    target.scatter_(1, labels[:, None], 1.0 - epsilon)
    return -(F.log_softmax(logits, dim=-1) * target).sum(dim=-1).mean()


class RelationLossComputation:
    """Mean cross-entropy over sampled pairs and over proposals.

    Args:
        label_smoothing_epsilon: 0 for plain cross-entropy, else the smoothing ``e``.
        rel_class_weights: optional ``[C_rel]`` per-predicate weights of the relation loss
            (background at 0): PyTorch's weighted mean, which divides by the summed weights
            of the targets. May be replaced between training runs (e.g. per training stage).
    """

    def __init__(self, label_smoothing_epsilon: float = 0.0,
                 rel_class_weights: Optional[torch.Tensor] = None) -> None:
        self.label_smoothing_epsilon = label_smoothing_epsilon
        self.rel_class_weights = rel_class_weights

    @classmethod
    def from_config(cls, cfg) -> "RelationLossComputation":
        return cls(label_smoothing_epsilon=0.01 if cfg.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS else 0.0)

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.label_smoothing_epsilon > 0:
            return label_smoothing_cross_entropy(logits, labels, self.label_smoothing_epsilon)
        return F.cross_entropy(logits, labels)

    def __call__(self, proposals: Sequence[BoxList], rel_labels: Sequence[torch.Tensor],
                 relation_logits: Sequence[torch.Tensor], refine_logits: Sequence[torch.Tensor]
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(loss_rel, loss_refine_obj)`` from per-image logits and labels."""
        rel_logits = torch.cat(list(relation_logits), dim=0)
        obj_logits = torch.cat(list(refine_logits), dim=0)
        obj_labels = torch.cat([p.get_field("labels") for p in proposals], dim=0).long()
        rel_targets = torch.cat(list(rel_labels), dim=0).long()
        if self.rel_class_weights is not None:
            if self.label_smoothing_epsilon > 0:
                raise ValueError("relation class weights and label smoothing cannot be combined")
            loss_rel = F.cross_entropy(rel_logits, rel_targets, weight=self.rel_class_weights.to(rel_logits))
        else:
            loss_rel = self._cross_entropy(rel_logits, rel_targets)
        loss_refine_obj = self._cross_entropy(obj_logits, obj_labels)
        return loss_rel, loss_refine_obj
