"""Multi-level ROIAlign pooling over FPN feature maps."""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.layers import ROIAlign
from maskrcnn_benchmark.structures import BoxList

from .make_layers import make_conv3x3
from .utils import cat


class LevelMapper:
    """FPN level of each box (equation 1 of the FPN paper), as an index from 0 = ``k_min``.

    ``level = floor(canonical_level + log2(sqrt(area) / canonical_scale + eps))`` clamped to
    ``[k_min, k_max]``; the area uses the benchmark's "+1" widths (``BoxList.area()``).
    """

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224, canonical_level: int = 4,
                 eps: float = 1e-6) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.s0 = canonical_scale
        self.lvl0 = canonical_level
        self.eps = eps

    def __call__(self, boxlists: Sequence[BoxList]) -> torch.Tensor:
        s = torch.sqrt(cat([boxlist.area() for boxlist in boxlists]))
        target_lvls = torch.floor(self.lvl0 + torch.log2(s / self.s0 + self.eps))
        target_lvls = torch.clamp(target_lvls, min=self.k_min, max=self.k_max)
        return target_lvls.to(torch.int64) - self.k_min


def convert_to_roi_format(boxes: Sequence[BoxList]) -> torch.Tensor:
    """``[K, 5]`` rois (image index, x1, y1, x2, y2) for ROIAlign from per-image BoxLists."""
    concat_boxes = cat([b.bbox for b in boxes], dim=0)
    ids = cat([torch.full((len(b), 1), i, dtype=concat_boxes.dtype, device=concat_boxes.device)
               for i, b in enumerate(boxes)], dim=0)
    return torch.cat([ids, concat_boxes], dim=1)


class Pooler(nn.Module):
    """ROIAlign over one or several feature levels (``scales`` = 1 / stride per level).

    Two ways to pool several levels:
    - ``pool_by_level``: each box from the one level the LevelMapper picks for it
      (the box heads);
    - ``pool_all_levels``: each box from every level, concatenated on channels and
      reduced back to ``in_channels`` by ``reduce_channel`` (3x3 conv + ReLU). The
      benchmark's union-box extractor uses this (``cat_all_levels=True``), which is also
      what ``forward`` then does. Only then does the pooler own parameters.
    """

    def __init__(self, output_size: Tuple[int, int], scales: Sequence[float], sampling_ratio: int,
                 in_channels: int = 256, cat_all_levels: bool = False) -> None:
        super().__init__()
        self.poolers = nn.ModuleList(ROIAlign(output_size, spatial_scale=scale, sampling_ratio=sampling_ratio)
                                     for scale in scales)
        self.output_size = tuple(output_size)
        self.cat_all_levels = cat_all_levels
        lvl_min = -math.log2(scales[0])
        lvl_max = -math.log2(scales[-1])
        self.map_levels = LevelMapper(int(round(lvl_min)), int(round(lvl_max)))
        if cat_all_levels:
            self.reduce_channel = make_conv3x3(in_channels * len(scales), in_channels, use_relu=True)

    def forward(self, x: Sequence[torch.Tensor], boxes: Sequence[BoxList]) -> torch.Tensor:
        """Pooled features ``[K, C, h, w]`` for the boxes of all images, in order."""
        if self.cat_all_levels:
            return self.pool_all_levels(x, boxes)
        return self.pool_by_level(x, boxes)

    def pool_by_level(self, x: Sequence[torch.Tensor], boxes: Sequence[BoxList]) -> torch.Tensor:
        """Each box pooled from the level the LevelMapper assigns to it."""
        rois = convert_to_roi_format(boxes)
        if len(self.poolers) == 1:
            return self.poolers[0](x[0], rois)
        levels = self.map_levels(boxes)
        result = x[0].new_zeros((rois.shape[0], x[0].shape[1], *self.output_size))
        for level, (per_level_feature, pooler) in enumerate(zip(x, self.poolers)):
            idx_in_level = torch.nonzero(levels == level).squeeze(1)
            if idx_in_level.numel():
                result[idx_in_level] = pooler(per_level_feature, rois[idx_in_level]).to(result.dtype)
        return result

    def pool_all_levels(self, x: Sequence[torch.Tensor], boxes: Sequence[BoxList]) -> torch.Tensor:
        """Each box pooled from every level, channels concatenated by level, then ``reduce_channel``."""
        if not self.cat_all_levels:
            raise RuntimeError("pool_all_levels needs a Pooler built with cat_all_levels=True")
        rois = convert_to_roi_format(boxes)
        pooled: List[torch.Tensor] = [pooler(feature, rois) for feature, pooler in zip(x, self.poolers)]
        return self.reduce_channel(torch.cat(pooled, dim=1))


def make_pooler(cfg, head_name: str, in_channels: int = 256, cat_all_levels: bool = False) -> Pooler:
    """Pooler from ``cfg.MODEL[head_name]``'s POOLER_RESOLUTION, POOLER_SCALES and POOLER_SAMPLING_RATIO."""
    head = cfg.MODEL[head_name]
    return Pooler(output_size=(head.POOLER_RESOLUTION, head.POOLER_RESOLUTION), scales=head.POOLER_SCALES,
                  sampling_ratio=head.POOLER_SAMPLING_RATIO, in_channels=in_channels,
                  cat_all_levels=cat_all_levels)
