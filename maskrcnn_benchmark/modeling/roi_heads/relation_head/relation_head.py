"""ROIRelationHead: pairs, features, predictor, then losses (training) or scene graphs (testing)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.data.build import get_dataset_statistics
from maskrcnn_benchmark.modeling.roi_heads.box_head.roi_box_feature_extractors import (
    make_roi_box_feature_extractor)
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .inference import RelationPostProcessor
from .loss import RelationLossComputation
from .registry_entries import make_roi_relation_predictor
from .roi_relation_feature_extractors import make_roi_relation_feature_extractor
from .sampling import RelationSampler, sample_pairs


@dataclass
class RelationBatch:
    """One training batch as the relation head saw it: the detector's feature maps, the
    proposals, the sampled pairs with their labels, the predictor's logits (per image),
    and the box and union features the predictor was given (concatenated over images;
    union features None when the predictor uses none), and the training targets."""

    features: Sequence[torch.Tensor]
    proposals: Sequence[BoxList]
    rel_pair_idxs: Sequence[torch.Tensor]
    rel_labels: Sequence[torch.Tensor]
    rel_binarys: Sequence[torch.Tensor]
    obj_logits: Sequence[torch.Tensor]
    rel_logits: Sequence[torch.Tensor]
    roi_features: Optional[torch.Tensor] = None
    union_features: Optional[torch.Tensor] = None
    targets: Optional[Sequence[BoxList]] = None


class ROIRelationHead(nn.Module):
    """The benchmark's relation head, with its submodule names (so checkpoints load).

    Args:
        union_feature_extractor: features of the union box of each pair (None when the
            predictor does not use them, PREDICT_USE_VISION False).
        box_feature_extractor: one feature vector per object box.
        predictor: ``(proposals, rel_pair_idxs, rel_labels, rel_binarys, roi_features,
            union_features, logger) -> (obj_logits, rel_logits, extra_losses)``, per image.
        sampler, loss_evaluator, post_processor: the plain objects that choose pairs,
            compute the losses and build the output BoxLists.

    Training frameworks (``maskrcnn_benchmark.engine.framework``) reach the head through
    ``loss_hooks`` (each ``(RelationBatch, losses) -> losses``, applied in order to the
    training losses) and ``framework_modules`` (their trainable modules, by framework
    name; empty for a plain model, so checkpoints keep the benchmark's keys).
    """

    def __init__(self, union_feature_extractor: Optional[nn.Module], box_feature_extractor: nn.Module,
                 predictor: nn.Module, sampler: RelationSampler, loss_evaluator: RelationLossComputation,
                 post_processor: RelationPostProcessor) -> None:
        super().__init__()
        if union_feature_extractor is not None:
            self.union_feature_extractor = union_feature_extractor
        self.box_feature_extractor = box_feature_extractor
        self.predictor = predictor
        self.sampler = sampler
        self.loss_evaluator = loss_evaluator
        self.post_processor = post_processor
        self.framework_modules = nn.ModuleDict()
        self.loss_hooks: List[Callable[[RelationBatch, Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]] = []

    @property
    def uses_union_features(self) -> bool:
        return hasattr(self, "union_feature_extractor")

    def forward(self, features: Sequence[torch.Tensor], proposals: Sequence[BoxList],
                targets: Optional[Sequence[BoxList]] = None, logger=None
                ) -> Tuple[torch.Tensor, List[BoxList], Dict[str, torch.Tensor]]:
        """Box features, then the proposals (training) or the scene graphs (testing), and losses."""
        with torch.no_grad():
            rel_labels, rel_pair_idxs, rel_binarys = sample_pairs(self.sampler, proposals, targets, self.training)
        roi_features = self.box_feature_extractor(features, proposals)
        union_features = (self.union_feature_extractor(features, proposals, rel_pair_idxs)
                          if self.uses_union_features else None)
        obj_logits, rel_logits, extra_losses = self.predictor(proposals, rel_pair_idxs, rel_labels, rel_binarys,
                                                              roi_features, union_features, logger)
        if not self.training:
            return roi_features, self.post_processor(rel_logits, obj_logits, rel_pair_idxs, proposals), {}
        loss_rel, loss_refine_obj = self.loss_evaluator(proposals, rel_labels, rel_logits, obj_logits)
        losses = {"loss_rel": loss_rel, "loss_refine_obj": loss_refine_obj}
        losses.update(extra_losses)
        if self.loss_hooks:
            batch = RelationBatch(features, proposals, rel_pair_idxs, rel_labels, rel_binarys, obj_logits,
                                  rel_logits, roi_features, union_features, targets)
            for hook in self.loss_hooks:
                losses = hook(batch, losses)
        return roi_features, list(proposals), losses


def build_roi_relation_head(cfg, in_channels: int, statistics: Optional[Mapping[str, Any]] = None
                            ) -> ROIRelationHead:
    """Relation head from MODEL.ROI_RELATION_HEAD; ``statistics`` defaults to the training set's
    (``maskrcnn_benchmark.data.get_dataset_statistics``), which the frequency bias and the
    word-vector class names need."""
    if statistics is None:
        statistics = get_dataset_statistics(cfg)
    head = cfg.MODEL.ROI_RELATION_HEAD
    union = make_roi_relation_feature_extractor(cfg, in_channels) if head.PREDICT_USE_VISION else None
    box_extractor = make_roi_box_feature_extractor(cfg, in_channels)
    return ROIRelationHead(
        union_feature_extractor=union,
        box_feature_extractor=box_extractor,
        predictor=make_roi_relation_predictor(cfg, box_extractor.out_channels, statistics),
        sampler=RelationSampler.from_config(cfg),
        loss_evaluator=RelationLossComputation.from_config(cfg),
        post_processor=RelationPostProcessor.from_config(cfg),
    )
