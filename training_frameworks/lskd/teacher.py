"""The iterative strategy's teacher: a frozen snapshot of the relation head scoring the student's pairs.

The snapshot holds its own copies of the head's box and union feature extractors and
predictor (all of ``roi_heads.relation`` trains, LSKD.md section 3.1) and runs on the
student's batch: the same feature maps, proposals and sampled pairs, so its logits line
up row by row with the student's. It runs the predictor's training branch under
``no_grad`` with its layers in inference behaviour (dropout off, BatchNorm on running
statistics, moving averages frozen), so it draws no random numbers and a resumed run
gets the same logits. It is not a submodule of the model: ``model.train()`` leaves it
alone and the optimizer never sees it; its weights travel in the checkpoint through the
framework's state.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch, ROIRelationHead


def freeze_for_inference(module: nn.Module) -> None:
    """No gradients; dropout and BatchNorm layers in eval mode, float ``dropout`` rates (LSTMs, tree
    LSTMs, decoders that read the rate, not the mode) set to 0, moving averages not tracked."""
    module.requires_grad_(False)
    for child in module.modules():
        if isinstance(child, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)):
            child.eval()
        elif isinstance(getattr(child, "dropout", None), float):
            child.dropout = 0.0
        if hasattr(child, "track_averages"):
            child.track_averages = False


class SnapshotTeacher(nn.Module):
    """Frozen copies of a relation head's feature extractors and predictor; :meth:`refresh` re-copies them."""

    def __init__(self, box_feature_extractor: nn.Module, union_feature_extractor: Optional[nn.Module],
                 predictor: nn.Module) -> None:
        super().__init__()
        self.box_feature_extractor = box_feature_extractor
        self.union_feature_extractor = union_feature_extractor
        self.predictor = predictor
        self.train()  # the predictor's training branch (pairs given, no decoding), as the student's
        freeze_for_inference(self)

    @staticmethod
    def _parts(head: ROIRelationHead) -> Tuple[nn.Module, Optional[nn.Module], nn.Module]:
        union = head.union_feature_extractor if head.uses_union_features else None
        return head.box_feature_extractor, union, head.predictor

    @classmethod
    def from_head(cls, head: ROIRelationHead) -> "SnapshotTeacher":
        """A deep copy of ``head``'s trained parts (the head is left untouched)."""
        return cls(*(copy.deepcopy(part) for part in cls._parts(head)))

    @torch.no_grad()
    def refresh(self, head: ROIRelationHead) -> None:
        """Copy ``head``'s current parameters and buffers into the snapshot, exactly."""
        for mine, theirs in zip((self.box_feature_extractor, self.union_feature_extractor, self.predictor),
                                self._parts(head)):
            if mine is not None:
                mine.load_state_dict(theirs.state_dict())

    @torch.no_grad()
    def forward(self, batch: RelationBatch) -> torch.Tensor:
        """Relation logits of the batch's pairs, concatenated over images ([R, C])."""
        roi_features = self.box_feature_extractor(batch.features, batch.proposals)
        union_features = (self.union_feature_extractor(batch.features, batch.proposals, batch.rel_pair_idxs)
                          if self.union_feature_extractor is not None else None)
        _, rel_logits, _ = self.predictor(batch.proposals, batch.rel_pair_idxs, batch.rel_labels, batch.rel_binarys,
                                          roi_features, union_features, None)
        return torch.cat(list(rel_logits), dim=0)
