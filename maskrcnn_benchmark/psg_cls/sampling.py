"""The report's under/over-sampling of training images ("balanced_dataset2").

Base list: every image with a low-frequency class, once; plus 2 more copies of those
among them without any frequent class, plus 3 more copies of those with one of the
rarest classes. Images with only frequent classes are left out, except through the
random extras: the report adds 500 uniformly drawn training images per epoch on its
~4,500 (a share of 1/9 here).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .class_lists import ClassLists

EXTRA_RANDOM_SHARE = 500 / 4500


def balanced_base(labels: Sequence[Sequence[int]], lists: ClassLists) -> np.ndarray:
    """Indices of the base list (with repeats), in image order within each group."""
    low, frequent, rarest = set(lists.low), set(lists.frequent), set(lists.rarest)
    chosen = [i for i, ids in enumerate(labels) if low & set(ids)]
    no_frequent = [i for i in chosen if not frequent & set(labels[i])]
    with_rarest = [i for i in chosen if rarest & set(labels[i])]
    return np.array(chosen + 2 * no_frequent + 3 * with_rarest, dtype=np.int64)


def balanced_epoch(base: np.ndarray, num_images: int, rng: np.random.Generator) -> np.ndarray:
    """One epoch's order: the base list plus the random extras, shuffled."""
    extras = rng.integers(0, num_images, size=round(EXTRA_RANDOM_SHARE * num_images))
    return rng.permutation(np.concatenate([base, extras]))
