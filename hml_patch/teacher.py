"""The frozen teacher of an HML stage: the previous stage's relation head scoring the student's pairs.

The teacher keeps its own feature extractors (trained with it in the previous
stage) and predictor, and is fed the student's batch: the same feature maps,
proposals and sampled relation pairs, so Concept Reconstruction compares the two
models on identical rows (the authors' code let the two models sample pairs
independently). It runs the predictor's training branch, as the student does, under
``no_grad``, with its dropout layers switched off so its targets carry no noise; its
parameters never train.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch, ROIRelationHead


class RelationTeacher(nn.Module):
    """Frozen copies of a relation head's feature extractors and predictor (``student`` level if wrapped)."""

    def __init__(self, box_feature_extractor: nn.Module, union_feature_extractor: Optional[nn.Module],
                 predictor: nn.Module) -> None:
        super().__init__()
        self.box_feature_extractor = box_feature_extractor
        self.union_feature_extractor = union_feature_extractor
        self.predictor = predictor
        self.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.eval()

    @classmethod
    def from_head(cls, head: ROIRelationHead) -> "RelationTeacher":
        """A detached deep copy of ``head``'s trained parts (the head itself is left untouched)."""
        predictor = getattr(head.predictor, "student", head.predictor)
        union = head.union_feature_extractor if head.uses_union_features else None
        return cls(copy.deepcopy(head.box_feature_extractor), copy.deepcopy(union), copy.deepcopy(predictor))

    @torch.no_grad()
    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, ...]:
        """Per-image relation logits for the batch's proposals and pairs."""
        roi_features = self.box_feature_extractor(batch.features, batch.proposals)
        union_features = (self.union_feature_extractor(batch.features, batch.proposals, batch.rel_pair_idxs)
                          if self.union_feature_extractor is not None else None)
        _, rel_logits, _ = self.predictor(batch.proposals, batch.rel_pair_idxs, batch.rel_labels, batch.rel_binarys,
                                          roi_features, union_features, None)
        return tuple(rel_logits)
