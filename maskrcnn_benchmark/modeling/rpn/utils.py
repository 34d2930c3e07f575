"""Reshaping of per-level RPN outputs into per-anchor rows, in the anchors' order."""
from typing import Sequence, Tuple

import torch

from ..utils import cat


def permute_and_flatten(layer: torch.Tensor, N: int, A: int, C: int, H: int, W: int) -> torch.Tensor:
    """``[N, A*C, H, W]`` -> ``[N, H*W*A, C]`` (row, column, anchor order, as the anchors)."""
    layer = layer.view(N, -1, C, H, W).permute(0, 3, 4, 1, 2)
    return layer.reshape(N, -1, C)


def concat_box_prediction_layers(box_cls: Sequence[torch.Tensor],
                                 box_regression: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """All levels' objectness ``[sum, C]`` and regression ``[sum, 4]``, image-major then level."""
    cls_flat, reg_flat = [], []
    for cls_per_level, reg_per_level in zip(box_cls, box_regression):
        N, AxC, H, W = cls_per_level.shape
        A = reg_per_level.shape[1] // 4
        C = AxC // A
        cls_flat.append(permute_and_flatten(cls_per_level, N, A, C, H, W))
        reg_flat.append(permute_and_flatten(reg_per_level, N, A, 4, H, W))
    return cat(cls_flat, dim=1).reshape(-1, C), cat(reg_flat, dim=1).reshape(-1, 4)
