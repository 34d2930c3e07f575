"""ROIAlign with the benchmark's sampling grid, on torchvision's kernel."""
from typing import Tuple

import torch
from torch import nn
from torchvision.ops import roi_align


class ROIAlign(nn.Module):
    """Pool ``[K, 5]`` rois (batch index, x1, y1, x2, y2) from one feature map.

    ``aligned=False`` is the benchmark's (Detectron's) grid: no half-pixel shift and
    roi sizes clamped to at least one feature cell, which is what its compiled kernel did.
    """

    def __init__(self, output_size: Tuple[int, int], spatial_scale: float, sampling_ratio: int) -> None:
        super().__init__()
        self.output_size = tuple(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_align(features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, aligned=False)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}")
