"""``COCOeval.evaluateImg`` for bbox, vectorised over images, categories, IoU thresholds and area ranges.

pycocotools matches one (image, category, area range) at a time in Python
loops, milliseconds per image. The rules, reproduced here exactly:

* detections of an (image, category) sorted by score (stable), the best 100 kept;
* IoU in float64 on xywh boxes without "+1": ``i = w * h``, ``i / (da + ga - i)``
  (``maskApi.c`` ``bbIou``, no crowd boxes here);
* GT boxes outside the area range are "ignored" and come after the others;
* greedily, in score order, each detection takes the unmatched GT with the
  highest IoU >= threshold, the last one on ties, a non-ignored GT whenever one
  qualifies; the detection is then ignored iff that GT is;
* the matched GT id is what marks a detection as matched, so a match to id 0
  reads as unmatched (the benchmark's ann-id quirk); an unmatched detection
  outside the area range is ignored.

Greedy order only matters within an (image, category), so the k-th detections
of all of them are matched together, one step per rank.
"""
from __future__ import annotations

import numpy as np

from .coco_accumulate import BBOX_PARAMS, NUM_AREAS, DetectionRecords, pack_bits
from .coco_chunk import CocoChunk

_THRESHOLDS = np.minimum(BBOX_PARAMS.iouThrs, 1 - 1e-10)
_AREA = np.asarray(BBOX_PARAMS.areaRng, dtype=np.float64)
_MAX_DET = BBOX_PARAMS.maxDets[-1]


def _outside_area(area: np.ndarray) -> np.ndarray:
    """(N, A) bool: area outside each area range."""
    return (area[:, None] < _AREA[:, 0]) | (area[:, None] > _AREA[:, 1])


def _pair_iou(det_xywh: np.ndarray, gt_xywh: np.ndarray) -> np.ndarray:
    d, g = det_xywh, gt_xywh
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (d[:, 2] * d[:, 3] + g[:, 2] * g[:, 3] - inter)
    return np.where((w > 0) & (h > 0), iou, 0.0)


def match_chunk(chunk: CocoChunk, categories: np.ndarray, records: DetectionRecords) -> None:
    """Match the detections of ``chunk`` and append the results to ``records``."""
    num_cat = len(categories)
    gt_cat = np.searchsorted(categories, chunk.gt_category)
    gt_order = np.lexsort((np.arange(len(gt_cat)), gt_cat, chunk.gt_image))
    gt_key = (chunk.gt_image * num_cat + gt_cat)[gt_order]
    gt_xywh, gt_id = chunk.gt_xywh[gt_order], chunk.gt_id[gt_order]
    gt_ignored = _outside_area(chunk.gt_area[gt_order])
    np.add.at(records.num_positive_gt, gt_cat[gt_order], (~gt_ignored).astype(np.int64))

    det_cat = np.searchsorted(categories, chunk.det_category)
    det_order = np.lexsort((np.arange(len(det_cat)), -chunk.det_score, det_cat, chunk.det_image))
    det_key = (chunk.det_image * num_cat + det_cat)[det_order]
    group_start = np.searchsorted(det_key, det_key, side="left")
    rank = np.arange(len(det_key)) - group_start
    keep = rank < _MAX_DET
    det_order, det_key, rank = det_order[keep], det_key[keep], rank[keep]
    num_det = len(det_order)

    first_gt = np.searchsorted(gt_key, det_key, side="left")
    num_gt = np.searchsorted(gt_key, det_key, side="right") - first_gt
    pair_det = np.repeat(np.arange(num_det), num_gt)
    pair_gt = np.repeat(first_gt - np.cumsum(num_gt) + num_gt, num_gt) + np.arange(len(pair_det))
    pair_iou = _pair_iou(chunk.det_xywh[det_order][pair_det], gt_xywh[pair_gt])
    by_step = np.lexsort((pair_gt, pair_iou, pair_det, rank[pair_det]))
    pair_det, pair_gt, pair_iou = pair_det[by_step], pair_gt[by_step], pair_iou[by_step]
    step_bounds = np.searchsorted(rank[pair_det], np.arange(_MAX_DET + 1))

    shape = (num_det, len(_THRESHOLDS), NUM_AREAS)
    gt_taken = np.zeros((len(gt_key), len(_THRESHOLDS), NUM_AREAS), dtype=bool)
    det_matched, det_ignored = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for step in range(_MAX_DET):
        lo, hi = step_bounds[step], step_bounds[step + 1]
        if lo == hi:
            continue
        dets, gts = pair_det[lo:hi], pair_gt[lo:hi]
        starts = np.flatnonzero(np.r_[True, dets[1:] != dets[:-1]])
        eligible = ~gt_taken[gts] & (pair_iou[lo:hi, None, None] >= _THRESHOLDS[None, :, None])
        ignored = gt_ignored[gts][:, None, :]
        position = np.arange(hi - lo)[:, None, None]
        best = np.maximum.reduceat(np.where(eligible & ~ignored, position, -1), starts, axis=0)
        fallback = np.maximum.reduceat(np.where(eligible & ignored, position, -1), starts, axis=0)
        choice = np.where(best >= 0, best, fallback)
        seg, t, a = np.nonzero(choice >= 0)
        gt = gts[choice[seg, t, a]]
        det = dets[starts[seg]]
        gt_taken[gt, t, a] = True
        det_matched[det, t, a] = gt_id[gt] != 0
        det_ignored[det, t, a] = gt_ignored[gt, a]
    det_ignored |= ~det_matched & _outside_area(chunk.det_area[det_order])[:, None, :]

    score = chunk.det_score[det_order]
    group = det_cat[det_order] * NUM_AREAS
    for a in range(NUM_AREAS):
        records.add(group + a, rank, score, pack_bits(det_matched[:, :, a].T), pack_bits(det_ignored[:, :, a].T))
