"""RPN losses: objectness BCE and smooth-L1 box regression over sampled anchors."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch.nn import functional as F

from maskrcnn_benchmark.layers import smooth_l1_loss
from maskrcnn_benchmark.modeling.balanced_positive_negative_sampler import (
    BalancedPositiveNegativeSampler,
)
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.modeling.matcher import Matcher
from maskrcnn_benchmark.structures import BoxList, boxlist_iou, cat_boxlist

from .utils import concat_box_prediction_layers


class RPNLossComputation:
    """Anchors matched to ground truth (low-quality matches allowed); anchors straddling
    the image and those between the IoU thresholds are ignored; a balanced sample per image
    gives BCE on objectness (mean) and smooth-L1 (beta 1/9) on positives, summed and divided
    by the number of sampled anchors.
    """

    def __init__(self, proposal_matcher: Matcher, fg_bg_sampler: BalancedPositiveNegativeSampler,
                 box_coder: BoxCoder) -> None:
        self.proposal_matcher = proposal_matcher
        self.fg_bg_sampler = fg_bg_sampler
        self.box_coder = box_coder

    def prepare_targets(self, anchors: Sequence[BoxList],
                        targets: Sequence[BoxList]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        labels, regression_targets = [], []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            matched_idxs = self.proposal_matcher(boxlist_iou(targets_per_image, anchors_per_image))
            matched_boxes = targets_per_image.bbox[matched_idxs.clamp(min=0)]
            labels_per_image = (matched_idxs >= 0).to(torch.float32)
            labels_per_image[matched_idxs == Matcher.BELOW_LOW_THRESHOLD] = 0
            labels_per_image[~anchors_per_image.get_field("visibility")] = -1
            labels_per_image[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1
            labels.append(labels_per_image)
            regression_targets.append(self.box_coder.encode(matched_boxes, anchors_per_image.bbox))
        return labels, regression_targets

    def __call__(self, anchors: Sequence[Sequence[BoxList]], objectness: Sequence[torch.Tensor],
                 box_regression: Sequence[torch.Tensor],
                 targets: Sequence[BoxList]) -> Tuple[torch.Tensor, torch.Tensor]:
        anchors = [cat_boxlist(list(anchors_per_image)) for anchors_per_image in anchors]
        labels, regression_targets = self.prepare_targets(anchors, targets)
        pos_masks, neg_masks = self.fg_bg_sampler(labels)
        sampled_pos_inds = torch.nonzero(torch.cat(pos_masks, dim=0)).squeeze(1)
        sampled_neg_inds = torch.nonzero(torch.cat(neg_masks, dim=0)).squeeze(1)
        sampled_inds = torch.cat([sampled_pos_inds, sampled_neg_inds], dim=0)

        objectness, box_regression = concat_box_prediction_layers(objectness, box_regression)
        objectness = objectness.squeeze(1)
        labels = torch.cat(labels, dim=0)
        regression_targets = torch.cat(regression_targets, dim=0)

        box_loss = smooth_l1_loss(box_regression[sampled_pos_inds], regression_targets[sampled_pos_inds],
                                  beta=1.0 / 9, size_average=False) / sampled_inds.numel()
        objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled_inds], labels[sampled_inds])
        return objectness_loss, box_loss


def make_rpn_loss_evaluator(cfg, box_coder: BoxCoder) -> RPNLossComputation:
    rpn = cfg.MODEL.RPN
    matcher = Matcher(rpn.FG_IOU_THRESHOLD, rpn.BG_IOU_THRESHOLD, allow_low_quality_matches=True)
    sampler = BalancedPositiveNegativeSampler(rpn.BATCH_SIZE_PER_IMAGE, rpn.POSITIVE_FRACTION)
    return RPNLossComputation(matcher, sampler, box_coder)
