"""Numbers computed from the benchmark's metrics: Mean@K, F@K and head/body/tail mean recall.

* Mean@K = (R@K + mR@K) / 2, the HML paper's summary number.
* F@K = 2 R@K mR@K / (R@K + mR@K), their harmonic mean (0 when both are 0).
* head/body/tail mR@K: the predicates are sorted by training count, most
  frequent first (ties: lower predicate id first), and cut into three groups of
  nearly equal size, the larger groups first (50 predicates -> 17 / 17 / 16);
  each group's value is the mean of its predicates' per-predicate recall@K.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

GROUP_NAMES = ("head", "body", "tail")


def frequency_groups(train_counts: Sequence[int], num_predicates: int) -> Dict[str, List[int]]:
    """Predicate ids (1-based) of the head, body and tail thirds.

    ``train_counts[p]`` is the training count of predicate p, entry 0 being the
    background (the layout of ``load_label_counts``).
    """
    counts = np.asarray(train_counts, dtype=np.int64)
    if counts.shape != (num_predicates + 1,):
        raise ValueError(f"train_counts should hold {num_predicates + 1} entries (background first), "
                         f"got shape {counts.shape}")
    ids = np.arange(1, num_predicates + 1)
    ordered = ids[np.argsort(-counts[1:], kind="stable")]
    return {name: part.tolist() for name, part in zip(GROUP_NAMES, np.array_split(ordered, len(GROUP_NAMES)))}


def _mean_and_f(recall: Optional[float], mean_recall: Optional[float]) -> tuple:
    if recall is None or mean_recall is None:
        return None, None
    total = recall + mean_recall
    return total / 2.0, (2.0 * recall * mean_recall / total if total > 0 else 0.0)


def derived_metrics(metrics: Dict[str, Dict[str, Optional[float]]], per_predicate_mr: Dict[str, List[float]],
                    groups: Optional[Dict[str, List[int]]]) -> Dict[str, Dict[str, Optional[float]]]:
    """Mean@K, F@K and (when ``groups`` is given) mR-head@K, mR-body@K, mR-tail@K."""
    out: Dict[str, Dict[str, Optional[float]]] = {"Mean@K": {}, "F@K": {}}
    for k, recall in metrics["R@K"].items():
        out["Mean@K"][k], out["F@K"][k] = _mean_and_f(recall, metrics["mR@K"][k])
    if groups is not None:
        for name in GROUP_NAMES:
            out[f"mR-{name}@K"] = {k: (float(np.mean([values[p - 1] for p in groups[name]]))
                                       if metrics["R@K"][k] is not None else None)
                                   for k, values in per_predicate_mr.items()}
    return out
