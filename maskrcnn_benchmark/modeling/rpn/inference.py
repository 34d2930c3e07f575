"""RPN post-processing: from objectness and box regression to per-image proposals."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from maskrcnn_benchmark.layers import boxlist_nms, remove_small_boxes
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.structures import BoxList, cat_boxlist

from .utils import permute_and_flatten


class RPNPostProcessor(nn.Module):
    """Per level: sigmoid, top ``pre_nms_top_n``, decode, clip, drop boxes under ``min_size``,
    NMS keeping ``post_nms_top_n``. Levels are then merged and the best
    ``fpn_post_nms_top_n`` kept per image, or per batch when training with
    ``fpn_post_nms_per_batch`` (Detectron's behaviour). With ``add_gt``, training appends
    the ground-truth boxes (objectness 1). Proposals carry an ``objectness`` field.
    """

    def __init__(self, pre_nms_top_n: int, post_nms_top_n: int, nms_thresh: float, min_size: float,
                 box_coder: Optional[BoxCoder] = None, fpn_post_nms_top_n: Optional[int] = None,
                 fpn_post_nms_per_batch: bool = True, add_gt: bool = True) -> None:
        super().__init__()
        self.pre_nms_top_n = pre_nms_top_n
        self.post_nms_top_n = post_nms_top_n
        self.nms_thresh = nms_thresh
        self.min_size = min_size
        self.box_coder = box_coder if box_coder is not None else BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.fpn_post_nms_top_n = post_nms_top_n if fpn_post_nms_top_n is None else fpn_post_nms_top_n
        self.fpn_post_nms_per_batch = fpn_post_nms_per_batch
        self.add_gt = add_gt

    def add_gt_proposals(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> List[BoxList]:
        out = []
        for proposal, target in zip(proposals, targets):
            gt_box = target.copy_with_fields([])
            gt_box.add_field("objectness", torch.ones(len(gt_box), device=proposal.bbox.device))
            out.append(cat_boxlist([proposal, gt_box]))
        return out

    def forward_for_single_feature_map(self, anchors: Sequence[BoxList], objectness: torch.Tensor,
                                       box_regression: torch.Tensor) -> List[BoxList]:
        """``anchors``: one BoxList per image for this level; ``objectness`` ``[N, A, H, W]``."""
        N, A, H, W = objectness.shape
        objectness = permute_and_flatten(objectness, N, A, 1, H, W).view(N, -1).sigmoid()
        box_regression = permute_and_flatten(box_regression, N, A, 4, H, W)
        pre_nms_top_n = min(self.pre_nms_top_n, A * H * W)
        objectness, topk_idx = objectness.topk(pre_nms_top_n, dim=1, sorted=True)
        batch_idx = torch.arange(N, device=objectness.device)[:, None]
        box_regression = box_regression[batch_idx, topk_idx]
        concat_anchors = torch.cat([a.bbox for a in anchors], dim=0).reshape(N, -1, 4)[batch_idx, topk_idx]
        proposals = self.box_coder.decode(box_regression.view(-1, 4), concat_anchors.view(-1, 4)).view(N, -1, 4)

        result = []
        for proposal, score, anchor in zip(proposals, objectness, anchors):
            boxlist = BoxList(proposal, anchor.size, mode="xyxy")
            boxlist.add_field("objectness", score)
            boxlist = boxlist.clip_to_image(remove_empty=False)
            boxlist = remove_small_boxes(boxlist, self.min_size)
            boxlist, _ = boxlist_nms(boxlist, self.nms_thresh, max_proposals=self.post_nms_top_n,
                                     score_field="objectness")
            result.append(boxlist)
        return result

    def forward(self, anchors: Sequence[Sequence[BoxList]], objectness: Sequence[torch.Tensor],
                box_regression: Sequence[torch.Tensor],
                targets: Optional[Sequence[BoxList]] = None) -> List[BoxList]:
        """``anchors[image][level]``, per-level head outputs; returns one BoxList per image."""
        per_level = [self.forward_for_single_feature_map(a, o, b)
                     for a, o, b in zip(zip(*anchors), objectness, box_regression)]
        boxlists = [cat_boxlist(list(per_image)) for per_image in zip(*per_level)]
        if len(objectness) > 1:
            boxlists = self.select_over_all_levels(boxlists)
        if self.training and targets is not None and self.add_gt:
            boxlists = self.add_gt_proposals(boxlists, targets)
        return boxlists

    def select_over_all_levels(self, boxlists: List[BoxList]) -> List[BoxList]:
        if self.training and self.fpn_post_nms_per_batch:
            objectness = torch.cat([b.get_field("objectness") for b in boxlists], dim=0)
            post_nms_top_n = min(self.fpn_post_nms_top_n, len(objectness))
            inds_sorted = torch.topk(objectness, post_nms_top_n, dim=0, sorted=True)[1]
            mask = torch.zeros_like(objectness, dtype=torch.bool)
            mask[inds_sorted] = True
            masks = mask.split([len(b) for b in boxlists])
            return [b[m] for b, m in zip(boxlists, masks)]
        out = []
        for boxlist in boxlists:
            objectness = boxlist.get_field("objectness")
            post_nms_top_n = min(self.fpn_post_nms_top_n, len(objectness))
            out.append(boxlist[torch.topk(objectness, post_nms_top_n, dim=0, sorted=True)[1]])
        return out


def make_rpn_postprocessor(cfg, rpn_box_coder: BoxCoder, is_train: bool) -> RPNPostProcessor:
    rpn = cfg.MODEL.RPN
    return RPNPostProcessor(
        pre_nms_top_n=rpn.PRE_NMS_TOP_N_TRAIN if is_train else rpn.PRE_NMS_TOP_N_TEST,
        post_nms_top_n=rpn.POST_NMS_TOP_N_TRAIN if is_train else rpn.POST_NMS_TOP_N_TEST,
        nms_thresh=rpn.NMS_THRESH,
        min_size=rpn.MIN_SIZE,
        box_coder=rpn_box_coder,
        fpn_post_nms_top_n=rpn.FPN_POST_NMS_TOP_N_TRAIN if is_train else rpn.FPN_POST_NMS_TOP_N_TEST,
        fpn_post_nms_per_batch=rpn.FPN_POST_NMS_PER_BATCH,
        add_gt=cfg.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN,
    )
