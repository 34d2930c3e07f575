"""Which object pairs the relation head looks at, and their training labels.

Three rules, as in the benchmark (REFERENCE 3.8):

* test: every ordered pair ``i != j`` (optionally only overlapping pairs in
  SGDet); an image without any pair gets the placeholder pair ``[0, 0]``;
* training on ground-truth boxes (PredCls / SGCls): all annotated pairs as
  foreground, random unannotated ordered pairs as background;
* training on detections (SGDet): a detection stands for a GT box when the
  labels agree and IoU > 0.5; each GT relation yields at most
  ``num_sample_per_gt_rel`` detection pairs, drawn with probability proportional
  to IoU(subject) * IoU(object).

Random draws use torch's and numpy's global generators (seeded by the trainer),
so the draws are reproducible but not those of the benchmark for a given seed.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.boxlist_ops import boxlist_iou

SampledPairs = Tuple[List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]


def _ordered_pair_mask(num_boxes: int, device: torch.device) -> torch.Tensor:
    """``[N, N]`` boolean matrix that is True off the diagonal."""
    return ~torch.eye(num_boxes, dtype=torch.bool, device=device)


def _random_subset(rows: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``rows`` in random order (all of them, shuffled, if fewer)."""
    perm = torch.randperm(rows.shape[0], device=rows.device)[:count]
    return rows[perm]


class RelationSampler:
    """Builds relation pairs for training and testing.

    Args:
        positive_fraction: share of the per-image budget that foreground pairs may take.
        batch_size_per_image: maximum number of sampled pairs per training image.
        num_sample_per_gt_rel: SGDet cap on detection pairs per GT relation.
        require_box_overlap: SGDet training samples only pairs with 0 < IoU < 1.
        use_gt_box: the proposals are the ground-truth boxes (PredCls / SGCls).
        test_require_overlap: SGDet testing keeps only pairs with IoU > 0.
        fg_iou_threshold: IoU a detection needs (strictly above) to stand for a GT box.
    """

    def __init__(self, positive_fraction: float, batch_size_per_image: int,
                 num_sample_per_gt_rel: int, require_box_overlap: bool, use_gt_box: bool,
                 test_require_overlap: bool, fg_iou_threshold: float = 0.5) -> None:
        self.batch_size_per_image = int(batch_size_per_image)
        self.num_pos_per_image = int(batch_size_per_image * positive_fraction)
        self.num_sample_per_gt_rel = int(num_sample_per_gt_rel)
        self.require_box_overlap = require_box_overlap
        self.use_gt_box = use_gt_box
        self.test_require_overlap = test_require_overlap
        self.fg_iou_threshold = fg_iou_threshold

    @classmethod
    def from_config(cls, cfg) -> "RelationSampler":
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(positive_fraction=head.POSITIVE_FRACTION,
                   batch_size_per_image=head.BATCH_SIZE_PER_IMAGE,
                   num_sample_per_gt_rel=head.NUM_SAMPLE_PER_GT_REL,
                   require_box_overlap=head.REQUIRE_BOX_OVERLAP,
                   use_gt_box=head.USE_GT_BOX,
                   test_require_overlap=cfg.TEST.RELATION.REQUIRE_OVERLAP)

    # ------------------------------------------------------------------ test
    def prepare_test_pairs(self, proposals: Sequence[BoxList]) -> List[torch.Tensor]:
        """All ordered pairs of each image as ``[R, 2]`` int64 (subject, object)."""
        pair_lists = []
        for proposal in proposals:
            device = proposal.bbox.device
            candidates = _ordered_pair_mask(len(proposal), device)
            if self.test_require_overlap and not self.use_gt_box:
                candidates &= boxlist_iou(proposal, proposal) > 0
            pairs = candidates.nonzero()
            if pairs.shape[0] == 0:
                pairs = torch.zeros((1, 2), dtype=torch.int64, device=device)
            pair_lists.append(pairs)
        return pair_lists

    # ------------------------------------------------------- train, GT boxes
    def gtbox_relsample(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> SampledPairs:
        """Pairs, labels and symmetric related-pair matrices for GT-box training.

        Returns ``(rel_labels, rel_pair_idxs, rel_binarys)`` lists, one entry per image.
        """
        if not self.use_gt_box:
            raise ValueError("gtbox_relsample needs GT boxes as proposals (USE_GT_BOX True)")
        rel_labels, rel_pairs, rel_binarys = [], [], []
        for proposal, target in zip(proposals, targets):
            device = proposal.bbox.device
            num_boxes = len(proposal)
            if num_boxes != len(target):
                raise ValueError(f"GT-box mode needs one proposal per GT box, got {num_boxes} and {len(target)}")
            relation_map = target.get_field("relation").to(device)
            fg_pairs = (relation_map > 0).nonzero()
            fg_labels = relation_map[fg_pairs[:, 0], fg_pairs[:, 1]].long()

            binary = torch.zeros((num_boxes, num_boxes), dtype=torch.int64, device=device)
            binary[fg_pairs[:, 0], fg_pairs[:, 1]] = 1
            binary[fg_pairs[:, 1], fg_pairs[:, 0]] = 1

            bg_mask = _ordered_pair_mask(num_boxes, device)
            bg_mask[fg_pairs[:, 0], fg_pairs[:, 1]] = False
            bg_pairs = bg_mask.nonzero()

            if fg_pairs.shape[0] > self.num_pos_per_image:
                keep = torch.randperm(fg_pairs.shape[0], device=device)[:self.num_pos_per_image]
                fg_pairs, fg_labels = fg_pairs[keep], fg_labels[keep]
            num_bg = min(self.batch_size_per_image - fg_pairs.shape[0], bg_pairs.shape[0])
            bg_pairs = _random_subset(bg_pairs, num_bg)

            rel_pairs.append(torch.cat([fg_pairs, bg_pairs], dim=0))
            rel_labels.append(torch.cat([fg_labels, fg_labels.new_zeros(bg_pairs.shape[0])]))
            rel_binarys.append(binary)
        return rel_labels, rel_pairs, rel_binarys

    # ------------------------------------------------------- train, detections
    def detect_relsample(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> SampledPairs:
        """Pairs, labels and related-pair matrices for SGDet training.

        Proposals must carry ``labels`` (the GT label assigned by the box head,
        0 for background). Returns ``(rel_labels, rel_pair_idxs, rel_binarys)``.
        """
        rel_labels, rel_pairs, rel_binarys = [], [], []
        for proposal, target in zip(proposals, targets):
            device = proposal.bbox.device
            prp_labels = proposal.get_field("labels").long()
            gt_labels = target.get_field("labels").long().to(device)
            relation_map = target.get_field("relation").to(device)

            ious = boxlist_iou(target, proposal)
            is_match = (gt_labels[:, None] == prp_labels[None, :]) & (ious > self.fg_iou_threshold)
            if self.require_box_overlap and not self.use_gt_box:
                self_iou = boxlist_iou(proposal, proposal)
                candidates = (self_iou > 0) & (self_iou < 1)
            else:
                candidates = _ordered_pair_mask(len(proposal), device)
            candidates[prp_labels == 0] = False
            candidates[:, prp_labels == 0] = False

            triplets, binary = self._sample_detection_pairs(relation_map, ious, is_match, candidates)
            rel_pairs.append(triplets[:, :2])
            rel_labels.append(triplets[:, 2])
            rel_binarys.append(binary)
        return rel_labels, rel_pairs, rel_binarys

    def _sample_detection_pairs(self, relation_map: torch.Tensor, ious: torch.Tensor,
                                is_match: torch.Tensor, candidates: torch.Tensor
                                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Foreground/background (subject, object, label) rows of one image.

        ``candidates`` is modified in place: pairs that stand for a GT relation
        stop being background candidates.
        """
        device = relation_map.device
        num_proposals = is_match.shape[1]
        binary = torch.zeros((num_proposals, num_proposals), dtype=torch.int64, device=device)
        gt_pairs = (relation_map > 0).nonzero()
        fg_rows = []
        for gt_head, gt_tail in gt_pairs.tolist():
            heads = is_match[gt_head].nonzero().squeeze(1)
            tails = is_match[gt_tail].nonzero().squeeze(1)
            if heads.numel() == 0 or tails.numel() == 0:
                continue
            grid_heads = heads[:, None].expand(-1, tails.numel()).reshape(-1)
            grid_tails = tails[None, :].expand(heads.numel(), -1).reshape(-1)
            binary[grid_heads, grid_tails] = 1
            binary[grid_tails, grid_heads] = 1
            distinct = grid_heads != grid_tails
            grid_heads, grid_tails = grid_heads[distinct], grid_tails[distinct]
            if grid_heads.numel() == 0:
                continue
            candidates[grid_heads, grid_tails] = False
            label = relation_map[gt_head, gt_tail].long()
            rows = torch.stack([grid_heads, grid_tails, label.expand_as(grid_heads)], dim=1)
            if rows.shape[0] > self.num_sample_per_gt_rel:
                rows = rows[self._draw_by_iou(ious[gt_head, grid_heads] * ious[gt_tail, grid_tails])]
            fg_rows.append(rows)

        fg = torch.cat(fg_rows, dim=0) if fg_rows else torch.zeros((0, 3), dtype=torch.int64, device=device)
        if fg.shape[0] > self.num_pos_per_image:
            fg = _random_subset(fg, self.num_pos_per_image)
        bg_pairs = candidates.nonzero()
        bg = torch.cat([bg_pairs, bg_pairs.new_zeros((bg_pairs.shape[0], 1))], dim=1)
        bg = _random_subset(bg, min(self.batch_size_per_image - fg.shape[0], bg.shape[0]))
        if fg.shape[0] == 0 and bg.shape[0] == 0:
            bg = torch.zeros((1, 3), dtype=torch.int64, device=device)
        return torch.cat([fg, bg], dim=0), binary

    def _draw_by_iou(self, scores: torch.Tensor) -> torch.Tensor:
        """Indices of ``num_sample_per_gt_rel`` rows drawn without replacement, p ∝ score."""
        probs = scores.detach().double().cpu().numpy()
        probs = probs / probs.sum()
        chosen = np.random.choice(probs.shape[0], size=self.num_sample_per_gt_rel, replace=False, p=probs)
        return torch.as_tensor(chosen, dtype=torch.int64, device=scores.device)


def build_relation_sampler(cfg) -> RelationSampler:
    """The relation pair sampler configured by ``MODEL.ROI_RELATION_HEAD`` and ``TEST.RELATION``."""
    return RelationSampler.from_config(cfg)


def sample_pairs(sampler: RelationSampler, proposals: Sequence[BoxList],
                 targets: Optional[Sequence[BoxList]], training: bool) -> Tuple[
                     Optional[List[torch.Tensor]], List[torch.Tensor], Optional[List[torch.Tensor]]]:
    """Dispatch to the rule of the current phase and mode.

    Returns ``(rel_labels, rel_pair_idxs, rel_binarys)``; labels and binarys are
    None at test time.
    """
    if not training:
        return None, sampler.prepare_test_pairs(proposals), None
    if targets is None:
        raise ValueError("relation training needs targets")
    if sampler.use_gt_box:
        return sampler.gtbox_relsample(proposals, targets)
    return sampler.detect_relsample(proposals, targets)
