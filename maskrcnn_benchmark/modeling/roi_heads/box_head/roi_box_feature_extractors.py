"""Box feature extractors: pooled RoI features -> one vector per box."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.modeling import registry
from maskrcnn_benchmark.modeling.make_layers import make_fc
from maskrcnn_benchmark.modeling.poolers import Pooler, make_pooler
from maskrcnn_benchmark.structures import BoxList


@registry.ROI_BOX_FEATURE_EXTRACTORS.register("FPN2MLPFeatureExtractor")
class FPN2MLPFeatureExtractor(nn.Module):
    """Multi-level ROIAlign, flatten, then ``fc6`` and ``fc7`` with ReLUs.

    ``cat_all_levels`` makes the pooler pool every level and reduce the concatenation
    (the relation head's union-box extractor); the box head pools by level.
    """

    def __init__(self, pooler: Pooler, in_channels: int, representation_size: int) -> None:
        super().__init__()
        resolution = pooler.output_size[0]
        self.pooler = pooler
        self.fc6 = make_fc(in_channels * resolution ** 2, representation_size)
        self.fc7 = make_fc(representation_size, representation_size)
        self.resize_channels = in_channels * resolution ** 2
        self.out_channels = representation_size

    @classmethod
    def from_config(cls, cfg, in_channels: int, cat_all_levels: bool = False) -> "FPN2MLPFeatureExtractor":
        head = cfg.MODEL.ROI_BOX_HEAD
        if head.USE_GN:
            raise ValueError("MODEL.ROI_BOX_HEAD.USE_GN is not supported")
        pooler = make_pooler(cfg, "ROI_BOX_HEAD", in_channels=in_channels, cat_all_levels=cat_all_levels)
        return cls(pooler, in_channels, head.MLP_HEAD_DIM)

    def forward(self, x: Sequence[torch.Tensor], proposals: Sequence[BoxList]) -> torch.Tensor:
        """``[sum of boxes, out_channels]`` features for the boxes of all images, in order."""
        return self.forward_without_pool(self.pooler(x, proposals))

    def forward_without_pool(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP on already pooled ``[K, C, h, w]`` features."""
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc6(x))
        return F.relu(self.fc7(x))


def make_roi_box_feature_extractor(cfg, in_channels: int, cat_all_levels: bool = False) -> nn.Module:
    """The extractor named by MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR."""
    extractor = registry.ROI_BOX_FEATURE_EXTRACTORS[cfg.MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR]
    return extractor.from_config(cfg, in_channels, cat_all_levels)
