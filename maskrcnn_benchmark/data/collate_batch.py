"""Collate dataset items into a padded image batch plus per-image targets."""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import torch

from maskrcnn_benchmark.structures import ImageList, to_image_list


class BatchCollator:
    """Turn ``[(image, target, index), ...]`` into ``(ImageList, targets, indices)``.

    Images are zero-padded to a common size that is a multiple of
    ``size_divisible`` (FPN needs sizes divisible by its coarsest stride);
    each image's own ``(h, w)`` is kept in ``ImageList.image_sizes``.
    Targets stay a tuple because images have different numbers of boxes.
    """

    def __init__(self, size_divisible: int = 0) -> None:
        self.size_divisible = size_divisible

    def __call__(self, batch: Sequence[Tuple[torch.Tensor, Any, int]]) -> Tuple[ImageList, Tuple[Any, ...],
                                                                              Tuple[int, ...]]:
        images, targets, indices = zip(*batch)
        return to_image_list(images, self.size_divisible), tuple(targets), tuple(indices)
