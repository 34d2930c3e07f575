"""Small tensor helpers shared by the heads."""
from typing import Sequence

import torch


def cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat`` that returns a lone tensor as is instead of copying it."""
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(list(tensors), dim)
