"""Match proposals to ground truth: sampled RoIs for detector training, labels for SGDet."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from maskrcnn_benchmark.modeling.balanced_positive_negative_sampler import (
    BalancedPositiveNegativeSampler,
)
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.modeling.matcher import Matcher
from maskrcnn_benchmark.structures import BoxList, boxlist_iou

# Ground-truth fields a proposal inherits from its matched box; "attributes" only where present.
_MATCHED_FIELDS = ("labels", "attributes")


class FastRCNNSampling:
    """Label proposals by their best-overlapping ground truth (MODEL.ROI_HEADS thresholds,
    no low-quality matches) and, for detector training, sample a balanced RoI batch."""

    def __init__(self, proposal_matcher: Matcher, fg_bg_sampler: BalancedPositiveNegativeSampler,
                 box_coder: BoxCoder) -> None:
        self.proposal_matcher = proposal_matcher
        self.fg_bg_sampler = fg_bg_sampler
        self.box_coder = box_coder

    def _match(self, proposal: BoxList, target: BoxList) -> Tuple[BoxList, torch.Tensor]:
        """The ground truth matched to each proposal (index clamped at 0) and the raw match codes."""
        matched_idxs = self.proposal_matcher(boxlist_iou(target, proposal))
        fields = [f for f in _MATCHED_FIELDS if target.has_field(f)]
        return target.copy_with_fields(fields)[matched_idxs.clamp(min=0)], matched_idxs

    def prepare_targets(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> List[BoxList]:
        """Per image, a BoxList of matched ground truth with fields ``labels`` (0 = background,
        -1 = between thresholds, ignored by the sampler), ``attributes`` (zeroed for
        background), ``regression_targets`` and ``matched_idxs``."""
        out = []
        for proposal, target in zip(proposals, targets):
            matched, matched_idxs = self._match(proposal, target)
            labels = matched.get_field("labels").to(torch.int64)
            bg = matched_idxs == Matcher.BELOW_LOW_THRESHOLD
            labels[bg] = 0
            labels[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1
            matched.add_field("labels", labels)
            if matched.has_field("attributes"):
                attributes = matched.get_field("attributes").to(torch.int64)
                attributes[bg] = 0
                matched.add_field("attributes", attributes)
            matched.add_field("regression_targets", self.box_coder.encode(matched.bbox, proposal.bbox))
            matched.add_field("matched_idxs", matched_idxs)
            out.append(matched)
        return out

    def subsample(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> List[BoxList]:
        """The sampled proposals of each image, with the fields of ``prepare_targets`` added."""
        matched = self.prepare_targets(proposals, targets)
        pos_masks, neg_masks = self.fg_bg_sampler([m.get_field("labels") for m in matched])
        sampled = []
        for proposal, match, pos, neg in zip(proposals, matched, pos_masks, neg_masks):
            for field in match.fields():
                proposal.add_field(field, match.get_field(field))
            sampled.append(proposal[torch.nonzero(pos | neg).squeeze(1)])
        return sampled

    def assign_label_to_proposals(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> List[BoxList]:
        """Add ``labels`` (and ``attributes``) of the matched ground truth to each proposal in place:
        a match needs IoU >= FG_IOU_THRESHOLD, anything else is background (0)."""
        for proposal, target in zip(proposals, targets):
            matched, matched_idxs = self._match(proposal, target)
            unmatched = matched_idxs < 0
            for field in matched.fields():
                values = matched.get_field(field).to(torch.int64)
                values[unmatched] = 0
                proposal.add_field(field, values)
        return list(proposals)


def make_roi_box_samp_processor(cfg) -> FastRCNNSampling:
    heads = cfg.MODEL.ROI_HEADS
    matcher = Matcher(heads.FG_IOU_THRESHOLD, heads.BG_IOU_THRESHOLD, allow_low_quality_matches=False)
    sampler = BalancedPositiveNegativeSampler(heads.BATCH_SIZE_PER_IMAGE, heads.POSITIVE_FRACTION)
    return FastRCNNSampling(matcher, sampler, BoxCoder(weights=heads.BBOX_REG_WEIGHTS))
