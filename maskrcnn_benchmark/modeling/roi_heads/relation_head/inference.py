"""Relation post-processor: from logits to the scored, sorted scene graph (REFERENCE 3.11)."""
from __future__ import annotations

from typing import Callable, List, Sequence

import torch
import torch.nn.functional as F

from maskrcnn_benchmark.structures.bounding_box import BoxList


def _class_overlaps(boxes_per_cls: torch.Tensor) -> torch.Tensor:
    """``[N, N, C]`` legacy (+1) IoU between the class-``c`` boxes of every two boxes.

    The union is summed as the benchmark's ``nms_overlaps`` did, ``-inter + area_j + area_i``,
    so that an IoU exactly at the threshold rounds the same way.
    """
    lt = torch.max(boxes_per_cls[:, None, :, :2], boxes_per_cls[None, :, :, :2])
    rb = torch.min(boxes_per_cls[:, None, :, 2:], boxes_per_cls[None, :, :, 2:])
    wh = (rb - lt + 1.0).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    sides = boxes_per_cls[..., 2:] - boxes_per_cls[..., :2] + 1.0
    areas = sides[..., 0] * sides[..., 1]
    return inter / (-inter + areas[None] + areas[:, None])


def obj_prediction_nms(boxes_per_cls: torch.Tensor, obj_logits: torch.Tensor, nms_thresh: float) -> torch.Tensor:
    """SGDet object labels chosen greedily with class-wise suppression.

    Repeatedly takes the highest (box, class) probability left, gives that box
    the class (unless it already has one), removes the box from further
    choices, and zeroes that class for every box whose class-specific box
    overlaps it with IoU >= ``nms_thresh`` (legacy +1 IoU). Equal probabilities go to the
    lowest (box, class) in row-major order, as NumPy's argmax did in the benchmark.

    Args:
        boxes_per_cls: ``[N, C, 4]`` class-specific boxes.
        obj_logits: ``[N, C]``; column 0 is background and is never chosen.
    Returns:
        ``[N]`` int64 labels in ``1..C-1`` (0 only if a box got no class).
    """
    num_boxes, num_classes = obj_logits.shape
    overlaps = _class_overlaps(boxes_per_cls.detach().float()) >= nms_thresh
    probs = F.softmax(obj_logits.detach().float(), dim=1).clone()
    probs[:, 0] = 0.0
    labels = torch.zeros(num_boxes, dtype=torch.int64, device=obj_logits.device)
    for _ in range(num_boxes):
        flat_index = int(torch.argmax(probs))
        box, cls = divmod(flat_index, num_classes)
        if labels[box] == 0:
            labels[box] = cls
        probs[overlaps[box, :, cls], cls] = 0.0
        probs[box] = -1.0
    return labels


def softmax_scores(rel_logit: torch.Tensor) -> torch.Tensor:
    """The benchmark's relation scores: the softmax of the logits."""
    return F.softmax(rel_logit, dim=-1)


class RelationPostProcessor:
    """Turns relation and object logits into the benchmark's output BoxLists.

    Args:
        use_gt_box: proposals are GT boxes (PredCls / SGCls): boxes stay as they are.
        later_nms_pred_thres: SGDet IoU threshold of :func:`obj_prediction_nms`.

    ``relation_scores`` maps one image's ``[R, C_rel]`` logits to its score vectors
    (default :func:`softmax_scores`); the label is the argmax over columns 1.. and the
    relation's rank score their max, times both object scores.
    """

    def __init__(self, use_gt_box: bool, later_nms_pred_thres: float) -> None:
        self.use_gt_box = use_gt_box
        self.later_nms_pred_thres = later_nms_pred_thres
        self.relation_scores: Callable[[torch.Tensor], torch.Tensor] = softmax_scores

    @classmethod
    def from_config(cls, cfg) -> "RelationPostProcessor":
        return cls(use_gt_box=cfg.MODEL.ROI_RELATION_HEAD.USE_GT_BOX,
                   later_nms_pred_thres=cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)

    def __call__(self, relation_logits: Sequence[torch.Tensor], refine_logits: Sequence[torch.Tensor],
                 rel_pair_idxs: Sequence[torch.Tensor], proposals: Sequence[BoxList]) -> List[BoxList]:
        return [self._one_image(rel_logit, obj_logit, pairs, proposal)
                for rel_logit, obj_logit, pairs, proposal
                in zip(relation_logits, refine_logits, rel_pair_idxs, proposals)]

    def _one_image(self, rel_logit: torch.Tensor, obj_logit: torch.Tensor, pairs: torch.Tensor,
                   proposal: BoxList) -> BoxList:
        obj_probs = F.softmax(obj_logit, dim=-1)
        obj_probs[:, 0] = 0.0
        if self.use_gt_box:
            obj_scores, obj_labels = obj_probs[:, 1:].max(dim=1)
            obj_labels = obj_labels + 1
            result = proposal
        else:
            boxes_per_cls = proposal.get_field("boxes_per_cls")
            obj_labels = obj_prediction_nms(boxes_per_cls, obj_logit, self.later_nms_pred_thres)
            rows = torch.arange(obj_labels.shape[0], device=obj_labels.device)
            obj_scores = obj_probs[rows, obj_labels]
            result = BoxList(boxes_per_cls[rows, obj_labels], proposal.size, "xyxy")
        result.add_field("pred_labels", obj_labels)
        result.add_field("pred_scores", obj_scores)

        rel_probs = self.relation_scores(rel_logit)
        rel_scores, rel_labels = rel_probs[:, 1:].max(dim=1)
        triple_scores = rel_scores * obj_scores[pairs[:, 0]] * obj_scores[pairs[:, 1]]
        order = torch.sort(triple_scores, descending=True, stable=True).indices
        result.add_field("rel_pair_idxs", pairs[order])
        result.add_field("pred_rel_scores", rel_probs[order])
        result.add_field("pred_rel_labels", rel_labels[order] + 1)
        return result
