"""pycocotools' ``accumulate`` + ``summarize`` over compact per-detection records.

``COCOeval.evaluate`` keeps one dict of arrays per (image, category, area
range), several GB on an SGDet-sized split. Here only what ``accumulate``
reads is kept from the per-image matching (``coco_match`` or pycocotools' own,
see ``coco_boxes``): per detection its score, its rank in its (image,
category), and one bit per IoU threshold for "matched" and "ignored"; per
(category, area range) the number of non-ignored GT boxes. The arithmetic
below is ``COCOeval.accumulate`` / ``summarize`` step for step (same stable
sort, same expressions, same -1 for absent categories), so the 12 stats are
the same floats.
"""
from __future__ import annotations

from typing import List

import numpy as np
from pycocotools.cocoeval import Params

BBOX_PARAMS = Params(iouType="bbox")
NUM_IOU = len(BBOX_PARAMS.iouThrs)
NUM_AREAS = len(BBOX_PARAMS.areaRng)
_BITS = (1 << np.arange(NUM_IOU, dtype=np.uint16))[:, None]


def pack_bits(flags: np.ndarray) -> np.ndarray:
    """(T, D) bool -> (D,) uint16, bit t = flags[t]."""
    return (flags.astype(np.uint16) * _BITS).sum(axis=0, dtype=np.uint16)


def unpack_bits(bits: np.ndarray) -> np.ndarray:
    """(D,) uint16 -> (T, D) bool."""
    return (bits[None, :] & _BITS) != 0


class DetectionRecords:
    """Append-only compact results of ``COCOeval.evaluateImg``, in image order."""

    def __init__(self, num_categories: int) -> None:
        self.num_categories = num_categories
        self.num_positive_gt = np.zeros((num_categories, NUM_AREAS), dtype=np.int64)
        self._parts: List[tuple] = []

    def add(self, group: np.ndarray, rank: np.ndarray, score: np.ndarray, matched: np.ndarray,
            ignored: np.ndarray) -> None:
        """Detections of a chunk of images: group = category index * NUM_AREAS + area index."""
        self._parts.append((group.astype(np.int32), rank.astype(np.int16), score.astype(np.float64),
                            matched.astype(np.uint16), ignored.astype(np.uint16)))

    def _columns(self):
        if not self._parts:
            empty = np.zeros(0)
            return (empty.astype(np.int32), empty.astype(np.int16), empty, empty.astype(np.uint16),
                    empty.astype(np.uint16))
        return tuple(np.concatenate(col) for col in zip(*self._parts))

    def accumulate(self) -> dict:
        """``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M) as in ``COCOeval.eval``."""
        p = BBOX_PARAMS
        num_r, num_m = len(p.recThrs), len(p.maxDets)
        precision = -np.ones((NUM_IOU, num_r, self.num_categories, NUM_AREAS, num_m))
        recall = -np.ones((NUM_IOU, self.num_categories, NUM_AREAS, num_m))
        group, rank, score, matched, ignored = self._columns()
        self._parts = [(group, rank, score, matched, ignored)]
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(self.num_categories * NUM_AREAS + 1))
        for k in range(self.num_categories):
            for a in range(NUM_AREAS):
                npig = int(self.num_positive_gt[k, a])
                if npig == 0:
                    continue
                idx = order[bounds[k * NUM_AREAS + a]:bounds[k * NUM_AREAS + a + 1]]
                for m, max_det in enumerate(p.maxDets):
                    sel = idx[rank[idx] < max_det]
                    inds = np.argsort(-score[sel], kind="mergesort")
                    dtm = unpack_bits(matched[sel][inds])
                    dt_ig = unpack_bits(ignored[sel][inds])
                    tps = np.logical_and(dtm, np.logical_not(dt_ig))
                    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
                    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                    nd = tp_sum.shape[1]
                    rc = tp_sum / npig
                    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                    recall[:, k, a, m] = rc[:, -1] if nd else 0
                    if nd:
                        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                    for t in range(NUM_IOU):
                        at = np.searchsorted(rc[t], p.recThrs, side="left")
                        q = np.zeros(num_r)
                        valid = at < nd
                        q[valid] = pr[t, at[valid]]
                        precision[t, :, k, a, m] = q
        return {"precision": precision, "recall": recall}


def summarize(evaluation: dict) -> List[float]:
    """The 12 ``COCOeval.summarize`` stats (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l)."""
    p = BBOX_PARAMS

    def one(ap: int, iou_thr=None, area: str = "all", max_dets: int = 100) -> float:
        aind = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == area]
        mind = [i for i, m in enumerate(p.maxDets) if m == max_dets]
        s = evaluation["precision"] if ap == 1 else evaluation["recall"]
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iouThrs)[0]]
        s = s[:, :, :, aind, mind] if ap == 1 else s[:, :, aind, mind]
        return float(np.mean(s[s > -1])) if len(s[s > -1]) else -1.0

    last = p.maxDets[2]
    return [
        one(1), one(1, .5, max_dets=last), one(1, .75, max_dets=last),
        one(1, area="small", max_dets=last), one(1, area="medium", max_dets=last), one(1, area="large", max_dets=last),
        one(0, max_dets=p.maxDets[0]), one(0, max_dets=p.maxDets[1]), one(0, max_dets=last),
        one(0, area="small", max_dets=last), one(0, area="medium", max_dets=last), one(0, area="large", max_dets=last),
    ]
