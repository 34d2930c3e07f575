"""Triplet matching: which ranked predictions hit which GT relations, without per-triplet loops.

A prediction (subject box, predicate, object box) matches a GT relation when the
three labels are equal and both boxes overlap their GT box with IoU >= the
threshold (IoU in float32 under the "+1" pixel convention, as the benchmark).
Only the rank of the first hit of each GT relation is needed: GT row r is
recalled at K exactly when that rank is < K.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from maskrcnn_benchmark.structures.box_convention import pixel_offset

TOP_N = 100  # the largest K; rows or entries ranked below it never count
NO_HIT = np.iinfo(np.int64).max


def legacy_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, M) IoU of float32 xyxy boxes under the "+1" convention, computed in float32 with
    the operations of ``boxlist_ops.box_iou`` (numpy: no per-call torch overhead)."""
    off = np.float32(pixel_offset(True))
    area1 = (boxes1[:, 2] - boxes1[:, 0] + off) * (boxes1[:, 3] - boxes1[:, 1] + off)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + off) * (boxes2[:, 3] - boxes2[:, 1] + off)
    lt = np.maximum(boxes1[:, None, :2], boxes2[:, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = np.maximum(rb - lt + off, np.float32(0))
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def box_match_table(gt_boxes: np.ndarray, gt_labels: np.ndarray, pred_boxes: np.ndarray,
                    pred_labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(G, P) bool: predicted box p can stand for GT box g (same label, IoU >= threshold)."""
    return (legacy_iou(gt_boxes, pred_boxes) >= iou_threshold) & (gt_labels[:, None] == pred_labels[None, :])


def first_hit_ranks(table: np.ndarray, gt_rels: np.ndarray, ranked: Sequence[Tuple[np.ndarray, np.ndarray]]
                    ) -> np.ndarray:
    """(R, len(ranked)): rank of the first prediction of each list matching each GT relation.

    Every list is (pairs (T, 2), predicates (T,)) in rank order; ``NO_HIT`` where
    none matches. ``table`` is ``box_match_table`` of the image. All lists are
    matched in one (R, total T) table.
    """
    sizes = [len(predicates) for _, predicates in ranked]
    filled = [i for i, size in enumerate(sizes) if size]
    result = np.full((len(gt_rels), len(ranked)), NO_HIT, dtype=np.int64)
    if not filled:
        return result
    pairs = np.concatenate([ranked[i][0] for i in filled])
    predicates = np.concatenate([ranked[i][1] for i in filled])
    starts = np.cumsum([0] + [sizes[i] for i in filled[:-1]])
    hit = table[gt_rels[:, 0:1], pairs[None, :, 0]]
    hit &= table[gt_rels[:, 1:2], pairs[None, :, 1]]
    hit &= gt_rels[:, 2:3] == predicates
    first = np.minimum.reduceat(np.where(hit, np.arange(len(predicates)), NO_HIT), starts, axis=1)
    result[:, filled] = np.where(first == NO_HIT, NO_HIT, first - starts)
    return result


def best_predicates(rel_scores: np.ndarray) -> np.ndarray:
    """Predicted predicate of each row: argmax over the non-background columns (lowest id on ties)."""
    return rel_scores[:, 1:].argmax(axis=1) + 1


def graph_constrained(rel_pairs: np.ndarray, rel_scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The first ``TOP_N`` rows as given (the post-processor's order; never re-sorted), one predicate each."""
    rows = slice(0, min(len(rel_pairs), TOP_N))
    return rel_pairs[rows], best_predicates(rel_scores[rows])


def no_graph_constraint(rel_pairs: np.ndarray, rel_scores: np.ndarray, pred_scores: np.ndarray
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """The ``TOP_N`` best (pair, predicate) entries by ``score_s * score_o * P(predicate)`` (float32).

    Ties are broken by row, then predicate (a stable order); the benchmark's
    unstable ``np.argsort`` leaves them implementation-defined. Only rows whose
    best entry reaches the ``TOP_N``-th best row maximum can hold a top entry,
    so only those rows are scored in full.
    """
    num_rows, num_cols = rel_scores.shape[0], rel_scores.shape[1] - 1
    pair_scores = pred_scores[rel_pairs[:, 0]] * pred_scores[rel_pairs[:, 1]]
    if num_rows > TOP_N:
        row_best = pair_scores * rel_scores[:, 1:].max(axis=1)
        cutoff = np.partition(row_best, num_rows - TOP_N)[num_rows - TOP_N]
        rows = np.flatnonzero(row_best >= cutoff)
        rel_pairs, pair_scores, rel_scores = rel_pairs[rows], pair_scores[rows], rel_scores[rows]
    order = _top_entries((pair_scores[:, None] * rel_scores[:, 1:]).ravel())
    return rel_pairs[order // num_cols], order % num_cols + 1


def _top_entries(scores: np.ndarray) -> np.ndarray:
    """Indices of the ``TOP_N`` largest scores, best first, lower index first on ties."""
    if len(scores) > TOP_N:
        cutoff = np.partition(scores, len(scores) - TOP_N)[len(scores) - TOP_N]
        above = np.flatnonzero(scores > cutoff)
        tied = np.flatnonzero(scores == cutoff)[:TOP_N - len(above)]
        chosen = np.sort(np.concatenate([above, tied]))
        return chosen[np.argsort(-scores[chosen], kind="stable")]
    return np.argsort(-scores, kind="stable")


def gt_pair_rows(rel_pairs: np.ndarray, rel_scores: np.ndarray, gt_rels: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Pair accuracy's predictions: the first ``TOP_N`` rows whose (subject, object) is a GT pair.

    Needs predicted and GT boxes in the same order (PredCls/SGCls).
    """
    size = int(max(gt_rels[:, :2].max(initial=0), rel_pairs.max(initial=0))) + 1
    is_gt_pair = np.zeros((size, size), dtype=bool)
    is_gt_pair[gt_rels[:, 0], gt_rels[:, 1]] = True
    rows = np.flatnonzero(is_gt_pair[rel_pairs[:, 0], rel_pairs[:, 1]])[:TOP_N]
    return rel_pairs[rows], best_predicates(rel_scores[rows])
