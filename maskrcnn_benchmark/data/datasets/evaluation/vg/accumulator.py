"""Running sums of the per-image relation metrics, one float64 buffer that can be all-reduced.

Every reported relation number is a ratio of sums over images (recall means,
per-predicate means, pair accuracy's hits over counts), so summing per-image
values as they arrive and summing the sums across processes gives the
single-process result without keeping any prediction.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist

from maskrcnn_benchmark.utils.comm import get_world_size

from .image_metrics import KS, ImageRelationResult

_COUNTERS = ("images_added", "images_evaluated", "images_zeroshot", "images_pair_accuracy",
             "skipped_no_gt_relation", "skipped_no_pair")


def flat_buffer(shapes: Dict[str, Tuple[int, ...]]) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """One zeroed float64 buffer (what ``all_reduce`` sums) and a named view into it per shape."""
    buffer = np.zeros(sum(int(np.prod(s)) for s in shapes.values()), dtype=np.float64)
    views: Dict[str, np.ndarray] = {}
    start = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        views[name] = buffer[start:start + size].reshape(shape)
        start += size
    return buffer, views


class RelationSums:
    """Sums over evaluated images; ``metrics()`` turns them into the reported numbers."""

    def __init__(self, num_predicates: int) -> None:
        self.num_predicates = num_predicates
        num_k, width = len(KS), num_predicates + 1
        shapes = {
            "counters": (len(_COUNTERS),),
            "recall": (num_k,), "ng_recall": (num_k,),
            "predicate_recall": (num_k, width), "ng_predicate_recall": (num_k, width), "predicate_images": (width,),
            "zs_recall": (num_k,), "ng_zs_recall": (num_k,),
            "pair_hits": (num_k,), "pair_count": (1,),
        }
        self.buffer, self._views = flat_buffer(shapes)

    def count(self, name: str) -> int:
        return int(self._views["counters"][_COUNTERS.index(name)])

    def increment(self, name: str) -> None:
        self._views["counters"][_COUNTERS.index(name)] += 1

    def add(self, result: ImageRelationResult) -> None:
        """Add one evaluated image."""
        v = self._views
        self.increment("images_evaluated")
        v["recall"] += result.recall
        v["ng_recall"] += result.ng_recall
        v["predicate_recall"] += result.predicate_recall
        v["ng_predicate_recall"] += result.ng_predicate_recall
        v["predicate_images"] += result.predicate_present
        if result.zs_recall is not None:
            self.increment("images_zeroshot")
            v["zs_recall"] += result.zs_recall
            v["ng_zs_recall"] += result.ng_zs_recall
        if result.pair_hits is not None:
            self.increment("images_pair_accuracy")
            v["pair_hits"] += result.pair_hits
            v["pair_count"] += result.num_gt

    def all_reduce(self) -> None:
        """Sum the buffers of all processes in place (no-op without torch.distributed)."""
        if get_world_size() > 1:
            dist.all_reduce(torch.from_numpy(self.buffer), op=dist.ReduceOp.SUM)

    def _mean_recall(self, name: str) -> Tuple[List[float], List[List[float]]]:
        """(mR per K, per-predicate lists per K); an unseen predicate counts as 0, as in the benchmark."""
        images = self._views["predicate_images"][1:]
        sums = self._views[name][:, 1:]
        per_predicate = np.divide(sums, images, out=np.zeros_like(sums), where=images > 0)
        means = []
        for row in per_predicate:
            total = 0.0
            for value in row.tolist():
                total += value
            means.append(total / float(self.num_predicates))
        return means, per_predicate.tolist()

    def metrics(self) -> Dict[str, object]:
        """Reported numbers keyed like the golden files (K as strings); None where undefined."""
        v = self._views
        evaluated, zeroshot = self.count("images_evaluated"), self.count("images_zeroshot")
        pair_images = self.count("images_pair_accuracy")

        def mean(sums: np.ndarray, images: int) -> Dict[str, Optional[float]]:
            return {str(k): (float(x) / images if images else None) for k, x in zip(KS, sums)}

        mean_recall, per_predicate = self._mean_recall("predicate_recall")
        ng_mean_recall, ng_per_predicate = self._mean_recall("ng_predicate_recall")
        mean_count = float(v["pair_count"][0]) / pair_images if pair_images else None
        pair_accuracy = {str(k): (float(h) / pair_images / mean_count if mean_count else None)
                         for k, h in zip(KS, v["pair_hits"])}
        return {
            "metrics": {
                "R@K": mean(v["recall"], evaluated),
                "ngR@K": mean(v["ng_recall"], evaluated),
                "mR@K": {str(k): (x if evaluated else None) for k, x in zip(KS, mean_recall)},
                "ng-mR@K": {str(k): (x if evaluated else None) for k, x in zip(KS, ng_mean_recall)},
                "zR@K": mean(v["zs_recall"], zeroshot),
                "ng-zR@K": mean(v["ng_zs_recall"], zeroshot),
                "A@K": pair_accuracy,
            },
            "per_predicate": {
                "mR": {str(k): row for k, row in zip(KS, per_predicate)},
                "ng-mR": {str(k): row for k, row in zip(KS, ng_per_predicate)},
                "images_per_predicate": [int(x) for x in v["predicate_images"][1:]],
            },
            "pair_accuracy_detail": None if not pair_images else {
                "hit_sum": {str(k): float(h) for k, h in zip(KS, v["pair_hits"])},
                "count_sum": {str(k): float(v["pair_count"][0]) for k in KS},
            },
            "counts": {name: self.count(name) for name in _COUNTERS},
        }
