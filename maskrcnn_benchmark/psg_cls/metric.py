"""Mean recall@3 of CE7454, with the official evaluator's and grader's arithmetic.

For class c: n_c = images whose GT holds c, h_c = those whose prediction also holds c
(an image counts at most once per class; the order of a prediction and repeated ids do
not matter). mR@3 = mean over c = 6..55 of h_c / n_c. A class absent from the GT has
n_c = 0: the official val evaluator turns it into recall 0 (a denominator of 1), the
official grader would give NaN; here it counts 0, like the evaluator, and is listed in
``absent`` so that a caller can say so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from maskrcnn_benchmark.data.datasets.psg_vocabulary import NUM_POSITIONAL, PREDICATES

NUM_CLASSES = len(PREDICATES)


@dataclass(frozen=True)
class MeanRecall:
    """mR@K, the recall of every scored class (None where absent) and the absent classes."""

    score: float
    per_class: List[float]
    absent: List[int]


def class_counts(groundtruth: Sequence[Sequence[int]], predictions: Sequence[Sequence[int]],
                 num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(2, num_classes) int64: row 0 = n_c (images with c in GT), row 1 = h_c (also in the prediction)."""
    if len(groundtruth) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(groundtruth)} GT images")
    gt = np.zeros((len(groundtruth), num_classes), dtype=bool)
    pred = np.zeros_like(gt)
    for i, (labels, predicted) in enumerate(zip(groundtruth, predictions)):
        for name, ids, table in (("GT", labels, gt), ("prediction", predicted, pred)):
            ids = np.asarray(ids, dtype=np.int64).reshape(-1)
            if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
                raise ValueError(f"{name} of image {i} has ids {ids.tolist()} outside 0..{num_classes - 1}")
            table[i, ids] = True
    return np.stack([gt.sum(axis=0), (gt & pred).sum(axis=0)])


def mean_recall(groundtruth: Sequence[Sequence[int]], predictions: Sequence[Sequence[int]],
                num_classes: int = NUM_CLASSES, num_ignored: int = NUM_POSITIONAL) -> MeanRecall:
    """CE7454's mR over classes ``num_ignored..num_classes-1`` (predictions are the top-3 id lists)."""
    counts, hits = class_counts(groundtruth, predictions, num_classes)[:, num_ignored:]
    recall = np.divide(hits, counts, out=np.zeros(len(counts)), where=counts > 0)
    absent = [int(c) + num_ignored for c in np.flatnonzero(counts == 0)]
    return MeanRecall(score=float(recall.mean()), per_class=[float(r) for r in recall], absent=absent)
