"""The class lists behind the report's imbalance tricks: fixed (the report's ids) or derived by rule.

The report hard-codes, among the 50 scored predicates of real PSG: 30 "low-frequency"
classes (weighted in the loss, the sampler's base), 4 frequent ones (images holding
them get no extra copies), 12 of the rarest (3 more copies) and 37 whose probabilities
are multiplied. The rule ranks the scored classes by their training-image count
(ascending, ties by id) and takes the same shares of the 50: the rarest 60 %, the 4 %
... so that the lists follow the data instead of real PSG's ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from maskrcnn_benchmark.data.datasets.psg_vocabulary import NUM_POSITIONAL, PREDICATES

REPORT_LOW = (6, 7, 8, 9, 10, 13, 15, 17, 18, 19, 24, 25, 27, 28, 29, 30, 31, 32, 33, 34, 35, 38, 39, 40, 41,
              43, 44, 50, 52, 53)
REPORT_FREQUENT = (11, 14, 21, 23)
REPORT_RAREST = (7, 8, 9, 10, 25, 31, 34, 35, 40, 41, 42, 43)
REPORT_MULTIPLIED = tuple(sorted(REPORT_LOW + (12, 26, 42, 45, 51, 54, 55)))
SOURCES = ("rule", "report")
NUM_SCORED = len(PREDICATES) - NUM_POSITIONAL


@dataclass(frozen=True)
class ClassLists:
    """Predicate ids (0..55) of each list."""

    low: Tuple[int, ...]
    frequent: Tuple[int, ...]
    rarest: Tuple[int, ...]
    multiplied: Tuple[int, ...]


REPORT_LISTS = ClassLists(REPORT_LOW, REPORT_FREQUENT, REPORT_RAREST, REPORT_MULTIPLIED)


def image_counts(labels: Sequence[Sequence[int]], num_classes: int = len(PREDICATES)) -> np.ndarray:
    """Training images per class (each image once per class)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for ids in labels:
        counts[sorted(set(int(i) for i in ids))] += 1
    return counts


def derive_lists(counts: np.ndarray) -> ClassLists:
    """The report's list sizes (as shares of the 50 scored classes) applied to ``counts``."""
    scored = np.arange(NUM_POSITIONAL, len(counts))
    ranked = scored[np.lexsort((scored, counts[scored]))]  # rarest first, ties by id

    def rarest(size: int) -> Tuple[int, ...]:
        return tuple(sorted(int(c) for c in ranked[:round(size / NUM_SCORED * len(scored))]))

    num_frequent = round(len(REPORT_FREQUENT) / NUM_SCORED * len(scored))
    frequent = tuple(sorted(int(c) for c in ranked[len(ranked) - num_frequent:]))
    return ClassLists(low=rarest(len(REPORT_LOW)), frequent=frequent, rarest=rarest(len(REPORT_RAREST)),
                      multiplied=rarest(len(REPORT_MULTIPLIED)))


def class_lists(source: str, counts: np.ndarray) -> ClassLists:
    """``rule``: derived from ``counts``; ``report``: the report's fixed ids."""
    if source not in SOURCES:
        raise ValueError(f"class list source should be one of {SOURCES}, got {source!r}")
    return derive_lists(counts) if source == "rule" else REPORT_LISTS


def class_vector(ids: Sequence[int], value: float, num_classes: int = len(PREDICATES)) -> np.ndarray:
    """float32 vector of ones with ``value`` at ``ids`` (loss weights, probability multipliers)."""
    vector = np.ones(num_classes, dtype=np.float32)
    vector[list(ids)] = value
    return vector
