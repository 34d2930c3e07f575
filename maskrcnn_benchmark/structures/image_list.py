"""ImageList: a padded batch of images that remembers each image's own size."""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import torch


class ImageList:
    """Images of different sizes zero-padded into one ``[B, C, H, W]`` tensor.

    ``image_sizes`` holds each image's unpadded ``(height, width)``.
    """

    def __init__(self, tensors: torch.Tensor, image_sizes: List[Tuple[int, int]]) -> None:
        self.tensors = tensors
        self.image_sizes = image_sizes

    def to(self, device: Union[str, torch.device]) -> "ImageList":
        return ImageList(self.tensors.to(device), self.image_sizes)


def to_image_list(tensors: Union[torch.Tensor, ImageList, Sequence[torch.Tensor]],
                  size_divisible: int = 0) -> ImageList:
    """Batch images, padding height and width up to a multiple of ``size_divisible``."""
    if isinstance(tensors, ImageList):
        return tensors
    if isinstance(tensors, torch.Tensor) and tensors.dim() == 3:
        tensors = [tensors]
    if isinstance(tensors, torch.Tensor) and size_divisible == 0:
        return ImageList(tensors, [tuple(t.shape[-2:]) for t in tensors])
    if not isinstance(tensors, (list, tuple, torch.Tensor)):
        raise TypeError(f"Unsupported type for to_image_list: {type(tensors)}")
    max_size = [max(s) for s in zip(*[img.shape for img in tensors])]
    if size_divisible > 0:
        max_size[1] = int(math.ceil(max_size[1] / size_divisible) * size_divisible)
        max_size[2] = int(math.ceil(max_size[2] / size_divisible) * size_divisible)
    batched = tensors[0].new_zeros((len(tensors), *max_size))
    for img, pad_img in zip(tensors, batched):
        pad_img[: img.shape[0], : img.shape[1], : img.shape[2]].copy_(img)
    return ImageList(batched, [tuple(img.shape[-2:]) for img in tensors])
