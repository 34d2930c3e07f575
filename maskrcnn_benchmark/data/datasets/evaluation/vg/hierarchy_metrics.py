"""Hierarchy-aware relation metrics over a two-level predicate tree (HIERARCHY.md D1), streaming.

Switched on by ``TEST.RELATION.PREDICATE_TREE``. Everything is graph-constrained:
the first ``TOP_N`` prediction rows in the given order, one predicate per row
(the argmax over the non-background columns), K = 20/50/100, and the box and
label matching of the plain recalls (labels equal, IoU >= threshold). Only the
predicate test changes. Notation: C coarse predicates, F fine ones, pi(f) the
parent of f (pi(c) = c), ch(c) the children of c, Path(g) = (pi(g), g) for a fine
g, (g) for a coarse one.

* HR@K: R@K where a prediction p also hits a coarse GT g when p is a child of g
  ("refine-accepted"). mHR@K: the mR@K aggregation of it (per predicate, the mean
  over images containing it; an absent predicate counts 0, as mR).
* gHR@K: per GT the best credit over its matching top-K rows: 1 for exact or
  refine, ``coarsen_weight`` for p = pi(g), ``sibling_weight`` for another child of
  pi(g), 0 otherwise; image-level mean like R@K. Both weights are reported.
* TOR_p@K, TOR_p+@K, POR_p@K (the pair-level HGR-Net analogues): per GT, the
  first top-K row whose subject and object boxes match the GT's (the GT pair in
  PredCls/SGCls, a box-matched pair in SGDet). TOR_p scores 1 when that row's
  predicate lies on Path(g), TOR_p+ also when it refines g. POR_p scores the
  per-layer argmaxes of the row: y1 over C and background of P1(c) = p(c) + sum of
  p over ch(c) (P1(bg) = p(bg)), y2 over F of p(f); a coarse g scores 1[y1 = g], a
  fine g (1[y1 = pi(g)] + 1[y2 = g]) / 2. A GT without such a row scores 0.
* Six-bucket confusion of those rows against g: exact, refine, coarsen, sibling,
  cross-branch, background, split by coarse- and fine-annotated GT and per parent
  pi(g); the rates of the proposal (CoarsenRate, RefineRate, ...) are shares of it.

Choices where D1 leaves room, and why:
* D1.4 has no K; here a pair only counts when its row is among the first K, so
  the pair metrics share the K budget of every other number (at K = 100 in
  PredCls with up to 14 boxes every pair is in, which is D1.4 exactly).
* TOR_p / POR_p / the buckets are pooled over GT instances (HR keeps R's
  image-level mean); their per-class means (mTOR_p, mPOR_p) average the classes
  that occur in the test set, since a class without GT has no value.
* The confusion's p is the row's argmax over all columns, background included
  (D1.5 has a background bucket, which the foreground-only argmax of the other
  metrics could never fill); the other five buckets therefore need the
  foreground to win over background, and the buckets sum to the matched GT.
* Rates are shares of the matched GT of their kind (the bucket rows sum to 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist

from maskrcnn_benchmark.structures.predicate_hierarchy import (
    BACKGROUND_PREDICTION, COARSEN, EXACT, PREDICATE_RELATIONS, REFINE, SIBLING, PredicateHierarchy)
from maskrcnn_benchmark.utils.comm import get_world_size

from .accumulator import flat_buffer
from .image_metrics import KS, _per_predicate
from .inputs import ImageInputs
from .matching import NO_HIT, TOP_N, best_predicates, box_match_table

_KS = np.asarray(KS)
NUM_BUCKETS = len(PREDICATE_RELATIONS)
ANNOTATION_KINDS = ("coarse_annotated", "fine_annotated")
# The proposal's rates: name -> (annotation kind, bucket).
RATES = {"CoarsenRate": ("fine_annotated", "coarsen"), "RefineRate": ("coarse_annotated", "refine"),
         "SiblingConfusion": ("fine_annotated", "sibling")}


@dataclass
class ImageHierarchyResult:
    """One image's values; per-K arrays have one row per K in ``KS``.

    ``hr`` / ``ghr`` are per-image means over GT; ``hr_predicate`` the per-predicate
    HR (0 where absent); ``tor``, ``tor_plus``, ``por`` per-predicate sums over GT;
    ``confusion`` (K, 2 kinds, P + 1 parents, 6 buckets) counts of matched GT.
    """

    hr: np.ndarray
    ghr: np.ndarray
    predicate_present: np.ndarray
    hr_predicate: np.ndarray
    gt_per_predicate: np.ndarray
    tor: np.ndarray
    tor_plus: np.ndarray
    por: np.ndarray
    confusion: np.ndarray


class HierarchyEvaluator:
    """Per-image hierarchy metrics and their running sums (one float64 buffer to all-reduce)."""

    def __init__(self, hierarchy: PredicateHierarchy, coarsen_weight: float = 0.5, sibling_weight: float = 0.5,
                 source: Optional[str] = None) -> None:
        for name, weight in (("coarsen_weight", coarsen_weight), ("sibling_weight", sibling_weight)):
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {weight}")
        self.hierarchy = hierarchy
        self.source = source
        self.weights = {"coarsen": float(coarsen_weight), "sibling": float(sibling_weight)}
        self.relations = hierarchy.relation_table()
        self.parent = np.asarray(hierarchy.parent)
        self.is_fine = hierarchy.is_fine()
        credit = np.zeros(NUM_BUCKETS)
        credit[[EXACT, REFINE]] = 1.0
        credit[COARSEN], credit[SIBLING] = coarsen_weight, sibling_weight
        self.credit = credit
        # P1's columns: background, then every coarse predicate; members[j] marks what P1 column j sums.
        coarse = hierarchy.coarse_ids()
        self.layer1_ids = np.asarray([0] + coarse)
        self.layer1_members = np.stack([self.parent == c for c in self.layer1_ids]).astype(np.float64)
        self.fine_ids = np.asarray(hierarchy.fine_ids(), dtype=np.int64)
        width, num_k = len(self.parent), len(KS)
        shapes = {
            "images": (1,), "hr": (num_k,), "ghr": (num_k,),
            "hr_predicate": (num_k, width), "predicate_images": (width,),
            "gt": (width,), "tor": (num_k, width), "tor_plus": (num_k, width), "por": (num_k, width),
            "confusion": (num_k, len(ANNOTATION_KINDS), width, NUM_BUCKETS),
        }
        self.buffer, self._views = flat_buffer(shapes)

    # ---------------------------------------------------------------- per image
    def evaluate(self, inputs: ImageInputs, iou_threshold: float) -> ImageHierarchyResult:
        """The metrics of one image with at least one GT relation and one row (``apply_mode`` already done)."""
        if len(inputs.gt_rels) == 0 or len(inputs.rel_pairs) == 0:
            raise ValueError("hierarchy metrics need at least one GT relation and one prediction row")
        gt_rels = inputs.gt_rels
        num_gt, width = len(gt_rels), len(self.parent)
        gt_predicates = gt_rels[:, 2]
        table = box_match_table(inputs.gt_boxes, inputs.gt_labels, inputs.pred_boxes, inputs.pred_labels,
                                iou_threshold)
        rows = min(len(inputs.rel_pairs), TOP_N)
        pairs, scores = inputs.rel_pairs[:rows], inputs.rel_scores[:rows]
        predicted = best_predicates(scores)
        pair_match = table[gt_rels[:, 0:1], pairs[None, :, 0]] & table[gt_rels[:, 1:2], pairs[None, :, 1]]
        kind = self.relations[gt_predicates[:, None], predicted[None, :]]  # (R, T)
        positions = np.arange(rows)

        accepted = pair_match & ((kind == EXACT) | (kind == REFINE))
        first_accepted = np.where(accepted, positions, NO_HIT).min(axis=1, initial=NO_HIT)
        hr_hits = first_accepted[:, None] < _KS  # (R, K)
        credit = np.maximum.accumulate(np.where(pair_match, self.credit[kind], 0.0), axis=1)
        ghr_credit = credit[:, np.minimum(_KS, rows) - 1]  # (R, K)

        first_pair = np.where(pair_match, positions, NO_HIT).min(axis=1, initial=NO_HIT)
        has_row = first_pair < NO_HIT
        row = np.where(has_row, first_pair, 0)
        in_k = has_row[:, None] & (first_pair[:, None] < _KS)  # (R, K)
        row_kind, row_scores = kind[np.arange(num_gt), row], scores[row]
        tor = in_k & ((row_kind == EXACT) | (row_kind == COARSEN))[:, None]
        tor_plus = in_k & ((row_kind == EXACT) | (row_kind == COARSEN) | (row_kind == REFINE))[:, None]
        por = in_k * self._por(row_scores, gt_predicates)[:, None]
        bucket = self._buckets(row_scores, row_kind)

        counts = np.bincount(gt_predicates, minlength=width)
        present = counts > 0
        present[0] = False
        confusion = np.zeros((len(KS), len(ANNOTATION_KINDS), width, NUM_BUCKETS))
        annotated_fine = self.is_fine[gt_predicates].astype(np.int64)
        for k in range(len(KS)):
            chosen = in_k[:, k]
            np.add.at(confusion[k], (annotated_fine[chosen], self.parent[gt_predicates[chosen]], bucket[chosen]), 1.0)
        return ImageHierarchyResult(
            hr=hr_hits.sum(axis=0) / num_gt,
            ghr=ghr_credit.sum(axis=0) / num_gt,
            predicate_present=present,
            hr_predicate=_per_predicate(hr_hits[:, None, :], gt_predicates, counts, present)[0],
            gt_per_predicate=counts.astype(np.float64),
            tor=_sum_by_predicate(tor, gt_predicates, width),
            tor_plus=_sum_by_predicate(tor_plus, gt_predicates, width),
            por=_sum_by_predicate(por, gt_predicates, width),
            confusion=confusion,
        )

    def _por(self, row_scores: np.ndarray, gt_predicates: np.ndarray) -> np.ndarray:
        """(R,) POR of each GT from its row's per-layer argmaxes (lowest id on ties)."""
        layer1 = self.layer1_ids[(row_scores.astype(np.float64) @ self.layer1_members.T).argmax(axis=1)]
        fine_gt = self.is_fine[gt_predicates]
        coarse_score = (layer1 == self.parent[gt_predicates]).astype(np.float64)
        if len(self.fine_ids) == 0:
            return coarse_score
        layer2 = self.fine_ids[row_scores[:, self.fine_ids].argmax(axis=1)]
        return np.where(fine_gt, 0.5 * (coarse_score + (layer2 == gt_predicates)), coarse_score)

    @staticmethod
    def _buckets(row_scores: np.ndarray, row_kind: np.ndarray) -> np.ndarray:
        """(R,) bucket of each GT's row: its kind, or background when the background column wins (ties too)."""
        background = row_scores[:, 0] >= row_scores[:, 1:].max(axis=1)
        return np.where(background, BACKGROUND_PREDICTION, row_kind).astype(np.int64)

    # -------------------------------------------------------------- running sums
    def add(self, result: ImageHierarchyResult) -> None:
        v = self._views
        v["images"] += 1
        v["hr"] += result.hr
        v["ghr"] += result.ghr
        v["hr_predicate"] += result.hr_predicate
        v["predicate_images"] += result.predicate_present
        v["gt"] += result.gt_per_predicate
        v["tor"] += result.tor
        v["tor_plus"] += result.tor_plus
        v["por"] += result.por
        v["confusion"] += result.confusion

    def add_image(self, inputs: ImageInputs, iou_threshold: float) -> None:
        """``evaluate`` and ``add`` in one call."""
        self.add(self.evaluate(inputs, iou_threshold))

    def all_reduce(self) -> None:
        """Sum the buffers of all processes in place (no-op in one process)."""
        if get_world_size() > 1:
            dist.all_reduce(torch.from_numpy(self.buffer), op=dist.ReduceOp.SUM)

    # -------------------------------------------------------------------- report
    def metrics(self) -> Dict[str, Dict[str, Optional[float]]]:
        """The hierarchy rows of ``metrics`` (K as strings; None before any image)."""
        v = self._views
        images = float(v["images"][0])
        gt = v["gt"]
        total_gt = gt[1:].sum()
        occurring = np.flatnonzero(gt[1:] > 0) + 1

        def per_k(values: np.ndarray, denominator: float) -> Dict[str, Optional[float]]:
            return {str(k): (float(x) / denominator if denominator else None) for k, x in zip(KS, values)}

        def class_mean(sums: np.ndarray) -> Dict[str, Optional[float]]:
            return {str(k): (float(np.mean(row[occurring] / gt[occurring])) if len(occurring) else None)
                    for k, row in zip(KS, sums)}

        hr_predicate = self._per_predicate_means()
        return {
            "HR@K": per_k(v["hr"], images),
            "mHR@K": {str(k): (float(sum(row.tolist())) / self.hierarchy.num_predicates if images else None)
                      for k, row in zip(KS, hr_predicate)},
            "gHR@K": per_k(v["ghr"], images),
            "TOR_p@K": per_k(v["tor"][:, 1:].sum(axis=1), total_gt),
            "TOR_p+@K": per_k(v["tor_plus"][:, 1:].sum(axis=1), total_gt),
            "POR_p@K": per_k(v["por"][:, 1:].sum(axis=1), total_gt),
            "mTOR_p@K": class_mean(v["tor"]),
            "mTOR_p+@K": class_mean(v["tor_plus"]),
            "mPOR_p@K": class_mean(v["por"]),
        }

    def _per_predicate_means(self) -> np.ndarray:
        """(K, P) per-predicate HR: mean over the images containing the predicate, 0 for absent ones."""
        images = self._views["predicate_images"][1:]
        sums = self._views["hr_predicate"][:, 1:]
        return np.divide(sums, images, out=np.zeros_like(sums), where=images > 0)

    def detail(self) -> Dict[str, Any]:
        """The ``hierarchy`` entry of the result: tree, weights, per-predicate values, confusion and rates."""
        v = self._views
        names = list(self.hierarchy.names)
        gt = v["gt"]

        def pooled(sums: np.ndarray) -> Dict[str, List[Optional[float]]]:
            return {str(k): [float(s) / gt[p] if gt[p] else None for p, s in enumerate(row) if p > 0]
                    for k, row in zip(KS, sums)}

        confusion, rates = {}, {}
        for k_index, k in enumerate(KS):
            counts = v["confusion"][k_index]
            by_kind = {kind: _bucket_row(counts[i].sum(axis=0)) for i, kind in enumerate(ANNOTATION_KINDS)}
            per_parent = {names[c]: _bucket_row(counts[:, c].sum(axis=0)) for c in self.hierarchy.coarse_ids()
                          if counts[:, c].sum() > 0}
            confusion[str(k)] = {**by_kind, "per_parent": per_parent}
            rates[str(k)] = {rate: by_kind[kind]["shares"][bucket] for rate, (kind, bucket) in RATES.items()}
            rates[str(k)]["CrossBranch"] = _share(counts.sum(axis=(0, 1)), "cross_branch")
            rates[str(k)]["Background"] = _share(counts.sum(axis=(0, 1)), "background")
        return {
            "tree": self.source,
            "graded_weights": dict(self.weights),
            "coarse": [names[p] for p in self.hierarchy.coarse_ids()],
            "parents": self.hierarchy.links(),
            "buckets": list(PREDICATE_RELATIONS),
            "gt_per_predicate": [int(x) for x in gt[1:]],
            "per_predicate": {"mHR": {str(k): row.tolist() for k, row in zip(KS, self._per_predicate_means())},
                              "TOR_p": pooled(v["tor"]), "TOR_p+": pooled(v["tor_plus"]), "POR_p": pooled(v["por"])},
            "confusion": confusion,
            "rates": rates,
        }


def _sum_by_predicate(values: np.ndarray, predicates: np.ndarray, width: int) -> np.ndarray:
    """(K, width) sums of the (R, K) ``values`` over GT rows of each predicate."""
    out = np.zeros((values.shape[1], width))
    for k in range(values.shape[1]):
        out[k] = np.bincount(predicates, weights=values[:, k].astype(np.float64), minlength=width)
    return out


def _bucket_row(counts: np.ndarray) -> Dict[str, Any]:
    total = float(counts.sum())
    return {"matched": total,
            "counts": {name: float(c) for name, c in zip(PREDICATE_RELATIONS, counts)},
            "shares": {name: (float(c) / total if total else None) for name, c in zip(PREDICATE_RELATIONS, counts)}}


def _share(counts: np.ndarray, bucket: str) -> Optional[float]:
    total = float(counts.sum())
    return float(counts[PREDICATE_RELATIONS.index(bucket)]) / total if total else None

