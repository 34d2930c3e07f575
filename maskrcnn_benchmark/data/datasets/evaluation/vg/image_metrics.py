"""Relation metrics of one image: per-K hits of every GT relation, reduced to per-image recalls."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .inputs import ImageInputs
from .matching import box_match_table, first_hit_ranks, graph_constrained, gt_pair_rows, no_graph_constraint

KS = (20, 50, 100)
_KS = np.asarray(KS)


@dataclass
class ImageRelationResult:
    """Per-image values the running sums add up; every array has one row per K in ``KS``.

    ``predicate_recall`` (and ``ng_``) are (len(KS), num_predicates + 1), 0 where
    not ``predicate_present``; zero-shot entries are None when the image has no
    zero-shot GT relation, pair accuracy ones when not measured.
    """

    recall: np.ndarray
    ng_recall: np.ndarray
    predicate_present: np.ndarray
    predicate_recall: np.ndarray
    ng_predicate_recall: np.ndarray
    zs_recall: Optional[np.ndarray]
    ng_zs_recall: Optional[np.ndarray]
    pair_hits: Optional[np.ndarray]
    num_gt: int

    def as_record(self) -> Dict[str, object]:
        """The per-image values as plain lists (predicate recalls keyed by predicate id)."""
        present = np.flatnonzero(self.predicate_present)
        return {
            "R@K": self.recall.tolist(),
            "ngR@K": self.ng_recall.tolist(),
            "zR@K": None if self.zs_recall is None else self.zs_recall.tolist(),
            "ng-zR@K": None if self.ng_zs_recall is None else self.ng_zs_recall.tolist(),
            "A_hits@K": None if self.pair_hits is None else self.pair_hits.tolist(),
            "A_count": None if self.pair_hits is None else float(self.num_gt),
            "predicate_recall": {str(p): self.predicate_recall[:, p].tolist() for p in present},
            "ng_predicate_recall": {str(p): self.ng_predicate_recall[:, p].tolist() for p in present},
        }


class ZeroShotTriplets:
    """Membership test for zero-shot (subject label, object label, predicate) triplets.

    A dense boolean table indexed by the three ids, one slot larger than the
    largest listed id on every axis; larger ids land in that always-False slot.
    """

    def __init__(self, triplets: np.ndarray) -> None:
        triplets = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
        if (triplets < 0).any():
            raise ValueError("zero-shot triplets should hold non-negative ids")
        self.size = len(np.unique(triplets, axis=0))
        self._limit = triplets.max(axis=0, initial=0) + 1
        self._table = np.zeros(self._limit + 1, dtype=bool)
        self._table[triplets[:, 0], triplets[:, 1], triplets[:, 2]] = True

    def lookup(self, subject_labels: np.ndarray, object_labels: np.ndarray, predicates: np.ndarray) -> np.ndarray:
        """(R,) bool: which (subject label, object label, predicate) rows are zero-shot."""
        limit = self._limit
        return self._table[np.minimum(subject_labels, limit[0]), np.minimum(object_labels, limit[1]),
                           np.minimum(predicates, limit[2])]


def _per_predicate(hits: np.ndarray, predicates: np.ndarray, counts: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(B, len(KS), num_predicates + 1): hits / count of each predicate present in the image (0 elsewhere).

    ``hits`` is (R, B, len(KS)) for B ranked lists.
    """
    width = len(counts)
    rows, cells = np.nonzero(hits.reshape(len(hits), -1))
    hit_counts = np.bincount(cells * width + predicates[rows], minlength=hits[0].size * width)
    hit_counts = hit_counts.reshape(*hits.shape[1:], width)
    return np.divide(hit_counts, counts, out=np.zeros(hit_counts.shape), where=present)


def evaluate_image(inputs: ImageInputs, num_predicates: int, iou_threshold: float,
                   zeroshot: Optional[ZeroShotTriplets], pair_accuracy: bool) -> ImageRelationResult:
    """All relation metrics of one image with at least one GT relation and one candidate pair.

    ``inputs`` must already carry the mode's objects (``apply_mode``).
    """
    gt_rels = inputs.gt_rels
    num_gt = len(gt_rels)
    table = box_match_table(inputs.gt_boxes, inputs.gt_labels, inputs.pred_boxes, inputs.pred_labels, iou_threshold)
    ranked = [graph_constrained(inputs.rel_pairs, inputs.rel_scores),
              no_graph_constraint(inputs.rel_pairs, inputs.rel_scores, inputs.pred_scores)]
    if pair_accuracy:
        ranked.append(gt_pair_rows(inputs.rel_pairs, inputs.rel_scores, gt_rels))
    hits = first_hit_ranks(table, gt_rels, ranked)[:, :, None] < _KS  # (R, lists, K)
    recalls = hits[:, :2].sum(axis=0) / num_gt

    predicates = gt_rels[:, 2]
    counts = np.bincount(predicates, minlength=num_predicates + 1)
    if len(counts) > num_predicates + 1 or predicates.min() < 1:
        raise ValueError(f"GT predicates should lie in 1..{num_predicates}, got {sorted(set(predicates.tolist()))}")
    present = counts > 0
    present[0] = False
    predicate_recall = _per_predicate(hits[:, :2], predicates, counts, present)

    zs_recall = None
    if zeroshot is not None:
        zs = zeroshot.lookup(inputs.gt_labels[gt_rels[:, 0]], inputs.gt_labels[gt_rels[:, 1]], predicates)
        num_zs = np.count_nonzero(zs)
        if num_zs:
            zs_recall = hits[zs, :2].sum(axis=0) / num_zs

    return ImageRelationResult(
        recall=recalls[0],
        ng_recall=recalls[1],
        predicate_present=present,
        predicate_recall=predicate_recall[0],
        ng_predicate_recall=predicate_recall[1],
        zs_recall=None if zs_recall is None else zs_recall[0],
        ng_zs_recall=None if zs_recall is None else zs_recall[1],
        pair_hits=hits[:, 2].sum(axis=0).astype(np.float64) if pair_accuracy else None,
        num_gt=num_gt,
    )
