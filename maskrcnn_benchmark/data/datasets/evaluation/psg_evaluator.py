"""OpenPSG's matching rule on the scene-graph evaluator: mask IoU where both sides have masks.

OpenPSG matches a predicted triplet to a GT triplet when the three labels agree and the
subject and the object each reach IoU >= 0.5 with their GT, the IoU being mask IoU in
its panoptic evaluation and box IoU otherwise. ``PSGEvaluator`` is ``SGGEvaluator`` with
that rule per image: mask IoU when the GT and the prediction both carry a ``masks``
field ((N, H, W) bool, one per box; in PredCls the GT masks stand for the prediction's),
box IoU otherwise. How many images were matched each way is in
``result()["protocol"]["matching"]`` and in the log. Everything else (recalls, mR,
skips, box mAP) is the scene-graph evaluator's; the hierarchy metrics keep box IoU.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.utils.comm import get_world_size

from .vg.evaluator import SGGEvaluator, build_sgg_evaluator
from .vg.image_metrics import _KS, ImageRelationResult, _per_predicate
from .vg.inputs import ImageInputs, apply_mode
from .vg.matching import first_hit_ranks, graph_constrained, gt_pair_rows, no_graph_constraint

MATCHING = ("mask", "box")


def mask_iou(gt_masks: np.ndarray, pred_masks: np.ndarray) -> np.ndarray:
    """(G, P) IoU of boolean masks (G, H, W) and (P, H, W); 0 where both are empty."""
    gt = gt_masks.reshape(len(gt_masks), -1).astype(np.float32)
    pred = pred_masks.reshape(len(pred_masks), -1).astype(np.float32)
    inter = gt @ pred.T
    union = gt.sum(axis=1)[:, None] + pred.sum(axis=1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mask_match_table(gt_masks: np.ndarray, gt_labels: np.ndarray, pred_masks: np.ndarray, pred_labels: np.ndarray,
                     iou_threshold: float) -> np.ndarray:
    """(G, P) bool: prediction p can stand for GT g (same label, mask IoU >= threshold)."""
    return (mask_iou(gt_masks, pred_masks) >= iou_threshold) & (gt_labels[:, None] == pred_labels[None, :])


def evaluate_image_with_table(inputs: ImageInputs, table: np.ndarray, num_predicates: int,
                              pair_accuracy: bool) -> ImageRelationResult:
    """The scene-graph evaluator's per-image relation metrics with a given match table (no zero-shot)."""
    gt_rels = inputs.gt_rels
    ranked = [graph_constrained(inputs.rel_pairs, inputs.rel_scores),
              no_graph_constraint(inputs.rel_pairs, inputs.rel_scores, inputs.pred_scores)]
    if pair_accuracy:
        ranked.append(gt_pair_rows(inputs.rel_pairs, inputs.rel_scores, gt_rels))
    hits = first_hit_ranks(table, gt_rels, ranked)[:, :, None] < _KS
    recalls = hits[:, :2].sum(axis=0) / len(gt_rels)
    counts = np.bincount(gt_rels[:, 2], minlength=num_predicates + 1)
    present = counts > 0
    present[0] = False
    predicate_recall = _per_predicate(hits[:, :2], gt_rels[:, 2], counts, present)
    return ImageRelationResult(
        recall=recalls[0], ng_recall=recalls[1], predicate_present=present, predicate_recall=predicate_recall[0],
        ng_predicate_recall=predicate_recall[1], zs_recall=None, ng_zs_recall=None,
        pair_hits=hits[:, 2].sum(axis=0).astype(np.float64) if pair_accuracy else None, num_gt=len(gt_rels))


class PSGEvaluator(SGGEvaluator):
    """``SGGEvaluator`` whose triplet matching uses mask IoU on images where both sides have masks."""

    @classmethod
    def from_evaluator(cls, evaluator: SGGEvaluator) -> "PSGEvaluator":
        """Take over the settings and (empty) sums of an evaluator made by ``build_sgg_evaluator``."""
        if evaluator.zeroshot is not None:
            raise ValueError("zero-shot metrics are not defined for PSG (TEST.RELATION.ZEROSHOT_TRIPLETS)")
        psg = cls.__new__(cls)
        psg.__dict__.update(evaluator.__dict__)
        psg.matched = np.zeros(len(MATCHING), dtype=np.float64)
        psg._masks = None
        return psg

    def add(self, groundtruth: BoxList, prediction: BoxList, image_id: Optional[int] = None) -> None:
        """Evaluate one image, by mask IoU when the GT has ``masks`` and the prediction too (or PredCls)."""
        pred_masks = groundtruth if self.mode == "predcls" else prediction
        with_masks = groundtruth.has_field("masks") and pred_masks.has_field("masks")
        self._masks = None
        if with_masks:
            self._masks = (groundtruth.get_field("masks").numpy(force=True),
                           pred_masks.get_field("masks").numpy(force=True))
        self.matched[0 if with_masks else 1] += 1
        super().add(groundtruth, prediction, image_id)

    def add_relations(self, inputs: ImageInputs, image_id: int) -> None:
        if self._masks is None or len(inputs.gt_rels) == 0 or len(inputs.rel_pairs) == 0:
            super().add_relations(inputs, image_id)
            return
        mode_inputs = apply_mode(inputs, self.mode)
        gt_masks, pred_masks = self._masks
        table = mask_match_table(gt_masks, mode_inputs.gt_labels, pred_masks, mode_inputs.pred_labels,
                                 self.iou_threshold)
        result = evaluate_image_with_table(mode_inputs, table, self.num_predicates, self.mode != "sgdet")
        self.sums.add(result)
        if self.hierarchy is not None:
            self.hierarchy.add_image(mode_inputs, self.iou_threshold)
        if self.per_image is not None:
            self.per_image.append(dict(image=image_id, **result.as_record()))

    def all_reduce(self) -> None:
        if get_world_size() > 1:
            counts = torch.from_numpy(self.matched)
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        super().all_reduce()

    def matching(self) -> Dict[str, int]:
        """Images matched by mask IoU and by box IoU."""
        return {f"{name}_iou_images": int(count) for name, count in zip(MATCHING, self.matched)}

    def protocol(self) -> Dict[str, Any]:
        return dict(super().protocol(), matching=self.matching())

    def log_lines(self) -> List[str]:
        counts = self.matching()
        return super().log_lines() + [
            f"PSG matching: mask IoU >= {self.iou_threshold} on {counts['mask_iou_images']} image(s) (both sides "
            f"have masks), box IoU on {counts['box_iou_images']} (the prediction has no masks)"]


def build_relation_evaluator(cfg, dataset, **kwargs) -> SGGEvaluator:
    """``build_sgg_evaluator``; for a dataset with panoptic masks (PSG) its ``PSGEvaluator`` form."""
    evaluator = build_sgg_evaluator(cfg, dataset, **kwargs)
    base = getattr(dataset, "dataset", dataset)
    return PSGEvaluator.from_evaluator(evaluator) if hasattr(base, "get_masks") else evaluator
