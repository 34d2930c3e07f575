"""A dataset restricted to some of its images, usable wherever the full dataset is.

The data loader builder can restrict a dataset with an index filter (a callable
returning the indices to keep); the samplers, the aspect-ratio grouping and the
evaluation then work on the subset as on any dataset.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Sequence

import numpy as np
import torch.utils.data

logger = logging.getLogger(__name__)

IndexFilter = Callable[[torch.utils.data.Dataset], Sequence[int]]

# Dataset-wide attributes (not per image) that the subset shares with its dataset.
_SHARED_ATTRIBUTES = ("ind_to_classes", "ind_to_predicates", "ind_to_attributes", "categories", "split")


class IndexSubset(torch.utils.data.Dataset):
    """The images ``indices`` of ``dataset``, addressed by their position in the subset.

    Items are the dataset's ``(image, target, index)`` with ``index`` the position
    in the subset, so that ``get_img_info(index)`` and ``get_groundtruth(index)``
    of the subset describe the same image; ``indices[i]`` is the original index.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, indices: Sequence[int]) -> None:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = indices[(indices < 0) | (indices >= len(dataset))]
        if bad.size:
            raise IndexError(f"subset index {int(bad[0])} is outside the dataset's {len(dataset)} images")
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        image, target, _ = self.dataset[int(self.indices[index])]
        return image, target, index

    def get_img_info(self, index: int) -> Dict[str, Any]:
        return self.dataset.get_img_info(int(self.indices[index]))

    def get_groundtruth(self, index: int, *args: Any, **kwargs: Any) -> Any:
        return self.dataset.get_groundtruth(int(self.indices[index]), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _SHARED_ATTRIBUTES:
            return getattr(self.__dict__["dataset"], name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def restrict_dataset(dataset: torch.utils.data.Dataset, index_filter: IndexFilter) -> IndexSubset:
    """``IndexSubset`` of the indices ``index_filter(dataset)`` returns; an empty result is an error."""
    subset = IndexSubset(dataset, index_filter(dataset))
    if len(subset) == 0:
        raise ValueError(f"the index filter {index_filter!r} kept none of the dataset's {len(dataset)} images")
    logger.info("Index filter kept %d of %d images", len(subset), len(dataset))
    return subset
