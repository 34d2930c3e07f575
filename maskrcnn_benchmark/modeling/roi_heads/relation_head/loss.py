"""Relation and object-refinement losses of the relation head (REFERENCE 3.10)."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

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


def class_balanced_weights(counts: torch.Tensor, classes: Iterable[int], gamma: float,
                           background_weight: float = 1.0) -> torch.Tensor:
    """Per-class CE weights of Cui et al. (CVPR 2019) over all predicate ids.

    ``counts[i]`` is the number of training relations of predicate ``i`` (index 0 =
    background, ignored). A class of ``classes`` gets ``(1 - gamma) / (1 - gamma ** n_i)``
    (``n_i`` at least 1), and those weights are rescaled to mean 1 so the loss scale does
    not depend on gamma; other classes get 0 (e.g. the predicates outside an HML stage,
    which never occur as labels in its images), and the background gets
    ``background_weight`` on the same scale (1.0 = an average class).
    """
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma}")
    counts = torch.as_tensor(counts, dtype=torch.float64)
    classes = torch.as_tensor(sorted(set(int(c) for c in classes)), dtype=torch.long)
    if classes.numel() == 0 or int(classes.min()) < 1 or int(classes.max()) >= counts.numel():
        raise ValueError(f"classes must be predicate ids in 1..{counts.numel() - 1}, got {classes.tolist()}")
    effective = 1.0 - torch.pow(torch.tensor(gamma, dtype=torch.float64), counts[classes].clamp(min=1.0))
    raw = (1.0 - gamma) / effective
    weights = torch.zeros_like(counts)
    weights[classes] = raw / raw.mean()
    weights[0] = background_weight
    return weights.float()


def inverse_frequency_weights(counts: torch.Tensor, classes: Iterable[int], background_weight: float = 1.0
                              ) -> torch.Tensor:
    """Per-class CE weights ``1 / n_i`` (``n_i`` at least 1) over all predicate ids, rescaled to mean 1
    over ``classes``; other classes 0, background ``background_weight`` on the same scale."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    classes = torch.as_tensor(sorted(set(int(c) for c in classes)), dtype=torch.long)
    if classes.numel() == 0 or int(classes.min()) < 1 or int(classes.max()) >= counts.numel():
        raise ValueError(f"classes must be predicate ids in 1..{counts.numel() - 1}, got {classes.tolist()}")
    raw = 1.0 / counts[classes].clamp(min=1.0)
    weights = torch.zeros_like(counts)
    weights[classes] = raw / raw.mean()
    weights[0] = background_weight
    return weights.float()


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
