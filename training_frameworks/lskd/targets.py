"""The hard part ``e`` of LS-KD's fused target, one row per sampled pair.

"random_pick": ``onehot(y)`` of the label the sampler gave the pair (the benchmark's
random pick among several GT predicates, redrawn at each load). "uniform_multi_hot":
``e`` spread evenly over every GT predicate of the pair (the targets' ``relation_all``
field, ``DATASETS.KEEP_ALL_PREDICATES``); pairs without one stay ``onehot(0)``. The
multi-hot form needs GT boxes (PredCls, SGCls), where pair indices are GT box indices.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from maskrcnn_benchmark.structures.bounding_box import BoxList

ALL_PREDICATES_FIELD = "relation_all"


def one_hot_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[R, C]`` float one-hot rows of ``labels``."""
    return F.one_hot(labels.long(), num_classes).float()


def multi_hot_targets(rel_pair_idxs: Sequence[torch.Tensor], targets: Sequence[BoxList],
                      labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[R, C]`` rows spread evenly over each pair's GT predicates; background rows (label 0) and
    pairs with no annotation stay one-hot on their label."""
    rows = []
    for pairs, target in zip(rel_pair_idxs, targets):
        if not target.has_field(ALL_PREDICATES_FIELD):
            raise ValueError("LSKD.MULTI_GT uniform_multi_hot needs the targets' relation_all field "
                             "(DATASETS.KEEP_ALL_PREDICATES True, VG-format data)")
        table = target.get_field(ALL_PREDICATES_FIELD)
        pairs = pairs.long()
        rows.append(table[pairs[:, 0], pairs[:, 1]].to(device=labels.device, dtype=torch.float32))
    multi = torch.cat(rows, dim=0)
    if multi.shape[1] != num_classes:
        raise ValueError(f"relation_all has {multi.shape[1]} predicates, the logits {num_classes}")
    counts = multi.sum(dim=1, keepdim=True)
    single = one_hot_targets(labels, num_classes)
    fg = (labels > 0)[:, None] & (counts > 0)
    return torch.where(fg, multi / counts.clamp(min=1.0), single)


def hard_targets(batch, num_classes: int, multi_gt: str) -> torch.Tensor:
    """The hard target rows of ``batch`` (a ``RelationBatch``) for ``LSKD.MULTI_GT`` ``multi_gt``."""
    labels = torch.cat(list(batch.rel_labels), dim=0).long()
    if multi_gt == "random_pick":
        return one_hot_targets(labels, num_classes)
    if multi_gt == "uniform_multi_hot":
        if batch.targets is None or any(len(p) != len(t) for p, t in zip(batch.proposals, batch.targets)):
            raise ValueError("LSKD.MULTI_GT uniform_multi_hot needs GT boxes (MODEL.ROI_RELATION_HEAD.USE_GT_BOX)")
        return multi_hot_targets(batch.rel_pair_idxs, batch.targets, labels, num_classes)
    raise ValueError(f"multi_gt should be 'random_pick' or 'uniform_multi_hot', got {multi_gt!r}")
