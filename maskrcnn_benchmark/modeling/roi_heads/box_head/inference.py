"""Box-head post-processing: per-class scoring, NMS and the per-image detection cap."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.layers import batched_nms
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.structures import BoxList


class PostProcessor(nn.Module):
    """Turn class logits and per-class deltas on proposals into detections.

    Per image: softmax; decode every class's box and clip it to the image; for each
    foreground class, keep scores > ``score_thresh``, NMS at ``nms`` (legacy "+1" IoU) and
    keep ``post_nms_per_cls_topn`` survivors. As in the benchmark (whose NMS returned kept
    indices in index order before its cap), those are the first survivors in proposal
    order, and stay in proposal order; with ``per_cls_topn_by_score`` they are the
    best-scoring ones, by decreasing score (what the benchmark's docstring meant, not what
    its checkpoints were evaluated with). With ``nms_filter_duplicates`` each proposal
    keeps only its best surviving class (detections then follow proposal order); otherwise
    detections are grouped by class. Finally at most ``detections_per_img`` remain: those
    scoring at least the k-th best score (ties may keep a few more), in their order, as in
    the benchmark.

    Detections carry ``pred_scores`` and ``pred_labels``. In relation mode they also carry
    ``boxes_per_cls`` ``[n, C, 4]`` (all decoded class boxes), ``predict_logits`` (the
    proposal's class logits) and the proposal's ``labels`` / ``attributes`` when present.
    """

    def __init__(self, score_thresh: float = 0.05, nms: float = 0.5, post_nms_per_cls_topn: int = 300,
                 nms_filter_duplicates: bool = True, detections_per_img: int = 100,
                 box_coder: Optional[BoxCoder] = None, cls_agnostic_bbox_reg: bool = False,
                 per_cls_topn_by_score: bool = False) -> None:
        super().__init__()
        self.score_thresh = score_thresh
        self.nms = nms
        self.post_nms_per_cls_topn = post_nms_per_cls_topn
        self.nms_filter_duplicates = nms_filter_duplicates
        self.detections_per_img = detections_per_img
        self.box_coder = box_coder if box_coder is not None else BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
        self.cls_agnostic_bbox_reg = cls_agnostic_bbox_reg
        self.per_cls_topn_by_score = per_cls_topn_by_score

    def forward(self, features: torch.Tensor, class_logits: torch.Tensor, box_regression: torch.Tensor,
                proposals: Sequence[BoxList], relation_mode: bool = False) -> Tuple[torch.Tensor, List[BoxList]]:
        """Features of the kept proposals (in detection order) and one detection BoxList per image.

        Scores and boxes are computed without gradient: nothing trains through them, and the
        boxes are clipped in place.
        """
        class_logits, box_regression = class_logits.detach(), box_regression.detach()
        class_prob = F.softmax(class_logits, -1)
        num_classes = class_prob.shape[1]
        boxes_per_image = [len(p) for p in proposals]
        concat_boxes = torch.cat([p.bbox for p in proposals], dim=0)
        if self.cls_agnostic_bbox_reg:
            box_regression = box_regression[:, -4:]
        decoded = self.box_coder.decode(box_regression.view(sum(boxes_per_image), -1), concat_boxes)
        if self.cls_agnostic_bbox_reg:
            decoded = decoded.repeat(1, num_classes)

        results, kept_features = [], []
        for prob, boxes, proposal, feats in zip(class_prob.split(boxes_per_image), decoded.split(boxes_per_image),
                                                proposals, features.split(boxes_per_image)):
            boxlist = BoxList(boxes.reshape(-1, 4), proposal.size, mode="xyxy").clip_to_image(remove_empty=False)
            boxes_per_cls = boxlist.bbox.reshape(-1, num_classes, 4)
            result, orig_inds = self.filter_results(boxes_per_cls, prob, proposal.size)
            if relation_mode:
                result.add_field("boxes_per_cls", boxes_per_cls[orig_inds])
                result.add_field("predict_logits", proposal.get_field("predict_logits")[orig_inds])
                for field in ("labels", "attributes"):
                    if proposal.has_field(field):
                        result.add_field(field, proposal.get_field(field)[orig_inds])
            results.append(result)
            kept_features.append(feats[orig_inds])
        return torch.cat(kept_features, dim=0), results

    def filter_results(self, boxes_per_cls: torch.Tensor, scores: torch.Tensor,
                       image_size: Tuple[int, int]) -> Tuple[BoxList, torch.Tensor]:
        """Detections of one image from ``[N, C, 4]`` boxes and ``[N, C]`` probabilities,
        and the proposal index of each detection."""
        device = scores.device
        candidates = scores > self.score_thresh
        candidates[:, 0] = False
        prop_idx, cls_idx = torch.nonzero(candidates, as_tuple=True)
        cand_scores = scores[prop_idx, cls_idx]
        keep = batched_nms(boxes_per_cls[prop_idx, cls_idx], cand_scores, cls_idx, self.nms)
        if not self.per_cls_topn_by_score:
            # Candidates are proposal-major, so index order is proposal order within a class.
            keep = torch.sort(keep).values
        # Class-major order, the within-class order kept, capped per class.
        keep = keep[torch.sort(cls_idx[keep], stable=True)[1]]
        kept_cls = cls_idx[keep]
        first_of_class = torch.searchsorted(kept_cls, kept_cls)
        rank_in_class = torch.arange(len(keep), device=device) - first_of_class
        if self.post_nms_per_cls_topn > 0:
            keep = keep[rank_in_class < self.post_nms_per_cls_topn]
        prop_idx, cls_idx, cand_scores = prop_idx[keep], cls_idx[keep], cand_scores[keep]

        if self.nms_filter_duplicates:
            survived = torch.zeros_like(scores)
            survived[prop_idx, cls_idx] = 1.0
            best_scores, best_labels = (scores * survived).max(dim=1)
            prop_idx = torch.nonzero(best_scores).squeeze(1)
            cls_idx, cand_scores = best_labels[prop_idx], best_scores[prop_idx]

        if len(cand_scores) > self.detections_per_img > 0:
            image_thresh, _ = torch.kthvalue(cand_scores.cpu(), len(cand_scores) - self.detections_per_img + 1)
            top = torch.nonzero(cand_scores >= image_thresh.item()).squeeze(1)
            prop_idx, cls_idx, cand_scores = prop_idx[top], cls_idx[top], cand_scores[top]

        result = BoxList(boxes_per_cls[prop_idx, cls_idx], image_size, mode="xyxy")
        result.add_field("pred_scores", cand_scores)
        result.add_field("pred_labels", cls_idx)
        return result, prop_idx


def make_roi_box_post_processor(cfg) -> PostProcessor:
    if cfg.TEST.BBOX_AUG.ENABLED:
        raise ValueError("TEST.BBOX_AUG.ENABLED (test-time augmentation) is not supported")
    if cfg.TEST.SAVE_PROPOSALS:
        raise ValueError("TEST.SAVE_PROPOSALS is not supported")
    heads = cfg.MODEL.ROI_HEADS
    return PostProcessor(
        score_thresh=heads.SCORE_THRESH,
        nms=heads.NMS,
        post_nms_per_cls_topn=heads.POST_NMS_PER_CLS_TOPN,
        nms_filter_duplicates=heads.NMS_FILTER_DUPLICATES,
        detections_per_img=heads.DETECTIONS_PER_IMG,
        box_coder=BoxCoder(weights=heads.BBOX_REG_WEIGHTS),
        cls_agnostic_bbox_reg=cfg.MODEL.CLS_AGNOSTIC_BBOX_REG,
        per_cls_topn_by_score=heads.POST_NMS_PER_CLS_TOPN_BY_SCORE,
    )
