"""Layer-pure image selection (HML.md section 3): stage k trains on the images whose
every annotated relation has a predicate of layer k.

The predicates are read from the dataset's relation arrays (``relationships``,
after the dataset's own filters: empty and non-overlapping relations), without
loading any image. Every annotated row counts, including repeated (subject,
object) pairs, so an image is kept only if whatever predicate its target draws
for a pair lies in the layer. Images without relations are never kept.

``LayerPureFilter`` is the index filter that ``make_data_loader(..., index_filter=...)``
applies, so the iteration-based, grouped and distributed samplers all run over
the kept images.
"""
from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

import numpy as np
import torch.utils.data

from .tree import PredicateTree

logger = logging.getLogger(__name__)


def image_predicates(dataset: Any) -> List[np.ndarray]:
    """Predicate ids of every image's annotated relations, one array per dataset index.

    Understands datasets with VGDataset's ``relationships`` list (rows of
    subject, object, predicate), ``torch.utils.data.ConcatDataset`` and
    ``Subset``-like wrappers with ``dataset`` and ``indices``.
    """
    if hasattr(dataset, "relationships"):
        return [np.asarray(rels, dtype=np.int64).reshape(-1, 3)[:, 2] for rels in dataset.relationships]
    if isinstance(dataset, torch.utils.data.ConcatDataset):
        return [preds for part in dataset.datasets for preds in image_predicates(part)]
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):
        inner = image_predicates(dataset.dataset)
        return [inner[int(i)] for i in dataset.indices]
    raise TypeError(f"cannot read relation predicates from a {type(dataset).__name__}: it needs VGDataset's "
                    "'relationships' (or be a ConcatDataset / Subset of such datasets)")


def layer_pure_indices(dataset: Any, layer_predicate_ids: Sequence[int]) -> np.ndarray:
    """Sorted indices of the images that have relations, all with a predicate in ``layer_predicate_ids``."""
    per_image = image_predicates(dataset)
    if not per_image:
        return np.zeros(0, dtype=np.int64)
    lengths = np.array([len(p) for p in per_image])
    predicates = np.concatenate(per_image)
    outside = ~np.isin(predicates, np.asarray(list(layer_predicate_ids), dtype=np.int64))
    outside_per_image = np.bincount(np.repeat(np.arange(len(per_image)), lengths), weights=outside.astype(np.float64),
                                    minlength=len(per_image))
    return np.flatnonzero((lengths > 0) & (outside_per_image == 0)).astype(np.int64)


class LayerPureFilter:
    """Index filter keeping the layer-pure images of one stage; logs kept/total.

    After a call, ``kept`` and ``total`` hold the numbers for the stage report.
    """

    def __init__(self, layer_predicate_ids: Sequence[int], stage: Optional[int] = None) -> None:
        self.layer_predicate_ids = sorted(int(p) for p in layer_predicate_ids)
        if not self.layer_predicate_ids:
            raise ValueError("a layer-pure filter needs at least one predicate id")
        self.stage = stage
        self.kept: Optional[int] = None
        self.total: Optional[int] = None

    @classmethod
    def for_stage(cls, tree: PredicateTree, stage: int) -> "LayerPureFilter":
        """The filter of ``stage`` (1-based): the images pure in the tree's layer ``stage``."""
        return cls(tree.stage_predicates(stage), stage)

    def __call__(self, dataset: Any) -> np.ndarray:
        indices = layer_pure_indices(dataset, self.layer_predicate_ids)
        self.kept, self.total = len(indices), len(dataset)
        share = self.kept / self.total if self.total else 0.0
        logger.info("Stage %s: kept %d of %d images (%.1f%%), those whose relations all have one of the "
                    "stage's %d predicates", self.stage if self.stage is not None else "-", self.kept,
                    self.total, 100 * share, len(self.layer_predicate_ids))
        return indices

    def __repr__(self) -> str:
        return f"LayerPureFilter(stage={self.stage}, predicates={self.layer_predicate_ids})"
