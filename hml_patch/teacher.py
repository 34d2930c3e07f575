"""The frozen teacher of an HML stage: the previous stage's relation head scoring the student's pairs.

The teacher keeps its own feature extractors (trained with it in the previous
stage) and predictor, and is fed the student's batch: the same feature maps,
proposals and sampled relation pairs, so Concept Reconstruction compares the two
models on identical rows (the authors' code let the two models sample pairs
independently). It runs the predictor's training branch, as the student does, under
``no_grad``, but with its layers in inference behaviour: dropout off and BatchNorm on its
running statistics, as when the stage-k-1 model is tested, and its moving averages (the causal
predictor's untreated features) frozen. Its logits are therefore free
of noise, draw no random numbers and do not depend on the other images of the batch. Its
parameters never train.

``TeacherLogitCache`` computes the teacher's logits of every ordered object pair of an
image once and serves the sampled pairs from memory on the image's later visits: over
a stage's epochs the teacher then costs about one forward per image instead of one
per step. It is valid for predictors whose logit of a pair does not depend on which
other pairs were sampled (MOTIFS, VCTree, Transformer, Causal; not IMP, whose messages run
between the sampled pairs).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch, ROIRelationHead
from maskrcnn_benchmark.structures.bounding_box import BoxList


class RelationTeacher(nn.Module):
    """Frozen copies of a relation head's feature extractors and predictor."""

    def __init__(self, box_feature_extractor: nn.Module, union_feature_extractor: Optional[nn.Module],
                 predictor: nn.Module) -> None:
        super().__init__()
        self.box_feature_extractor = box_feature_extractor
        self.union_feature_extractor = union_feature_extractor
        self.predictor = predictor
        self.requires_grad_(False)
        _inference_layers(self)

    @classmethod
    def from_head(cls, head: ROIRelationHead) -> "RelationTeacher":
        """A detached deep copy of ``head``'s trained parts (the head itself is left untouched)."""
        union = head.union_feature_extractor if head.uses_union_features else None
        return cls(copy.deepcopy(head.box_feature_extractor), copy.deepcopy(union), copy.deepcopy(head.predictor))

    @torch.no_grad()
    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, ...]:
        """Per-image relation logits for the batch's proposals and pairs."""
        roi_features = self.box_feature_extractor(batch.features, batch.proposals)
        union_features = (self.union_feature_extractor(batch.features, batch.proposals, batch.rel_pair_idxs)
                          if self.union_feature_extractor is not None else None)
        _, rel_logits, _ = self.predictor(batch.proposals, batch.rel_pair_idxs, batch.rel_labels, batch.rel_binarys,
                                          roi_features, union_features, None)
        return tuple(rel_logits)


PAIR_INDEPENDENT_PREDICTORS = ("MotifPredictor", "VCTreePredictor", "TransformerPredictor", "CausalAnalysisPredictor")


class TeacherLogitCache:
    """The teacher's logits of all ordered object pairs per image (``[n, n, C]``), computed on first sight.

    An entry is keyed by the image's proposal boxes and labels and a checksum of its first
    feature map, so an image that comes back resized, flipped or recoloured is a new entry.
    Each image is computed alone, in fixed chunks of ``chunk_pairs`` pairs, so its logits
    are the same bits whichever batch it arrives in (a resumed run rebuilds the cache
    exactly).
    """

    def __init__(self, teacher: RelationTeacher, chunk_pairs: int = 1024) -> None:
        self.teacher = teacher
        self.chunk_pairs = chunk_pairs
        self.entries: Dict[Tuple, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.entries.values())

    def __call__(self, batch: RelationBatch) -> Tuple[torch.Tensor, ...]:
        logits = []
        for index, (proposal, pairs) in enumerate(zip(batch.proposals, batch.rel_pair_idxs)):
            key = _image_key(batch.features, index, proposal)
            table = self.entries.get(key)
            if table is None:
                self.misses += 1
                table = self.entries[key] = self._all_pairs(batch.features, index, proposal)
            else:
                self.hits += 1
            pairs = pairs.long()
            logits.append(table[pairs[:, 0], pairs[:, 1]])
        return tuple(logits)

    def _all_pairs(self, features: Sequence[torch.Tensor], index: int, proposal: BoxList) -> torch.Tensor:
        n = len(proposal)
        device = features[0].device
        grid = torch.cartesian_prod(torch.arange(n, device=device), torch.arange(n, device=device))
        pairs = grid[grid[:, 0] != grid[:, 1]]
        image_features = [level[index:index + 1] for level in features]
        binary = torch.zeros(n, n, device=device)
        table = None
        for chunk in pairs.split(self.chunk_pairs):
            single = RelationBatch(image_features, [proposal], [chunk], [torch.zeros(len(chunk), dtype=torch.long,
                                                                                      device=device)],
                                   [binary], [], [])
            chunk_logits = self.teacher(single)[0]
            if table is None:
                table = chunk_logits.new_zeros(n, n, chunk_logits.shape[1])
            table[chunk[:, 0], chunk[:, 1]] = chunk_logits
        if table is None:  # fewer than two objects: no pair
            table = features[0].new_zeros(n, n, 0)
        return table


def _image_key(features: Sequence[torch.Tensor], index: int, proposal: BoxList) -> Tuple:
    labels = proposal.get_field("labels") if proposal.has_field("labels") else torch.zeros(0)
    checksum = float(features[0][index].sum(dtype=torch.float64))
    return (proposal.bbox.detach().cpu().numpy().tobytes(), labels.cpu().numpy().tobytes(), proposal.size,
            checksum)


def _inference_layers(module: nn.Module) -> None:
    """Dropout and BatchNorm layers to eval mode; every float ``dropout`` rate (LSTMs, tree LSTMs,
    decoder masks) to 0, as those modules read their rate and not their mode; moving averages
    (``track_averages``) frozen, so the teacher neither changes them nor joins their cross-rank
    mean (its calls per rank differ with the logit cache)."""
    for child in module.modules():
        if isinstance(child, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)):
            child.eval()
        elif isinstance(getattr(child, "dropout", None), float):
            child.dropout = 0.0
        if hasattr(child, "track_averages"):
            child.track_averages = False
