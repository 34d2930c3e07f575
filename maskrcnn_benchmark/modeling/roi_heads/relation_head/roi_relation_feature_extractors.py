"""Union-box features of a relation pair: pooled appearance plus the two boxes' layout (REFERENCE 3.7)."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
from torch import nn

from maskrcnn_benchmark.modeling import registry
from maskrcnn_benchmark.modeling.make_layers import make_fc
from maskrcnn_benchmark.modeling.roi_heads.box_head.roi_box_feature_extractors import (
    make_roi_box_feature_extractor)
from maskrcnn_benchmark.structures.bounding_box import BoxList


def union_boxes(heads: BoxList, tails: BoxList) -> BoxList:
    """The smallest box around each (head, tail) box pair."""
    head_boxes, tail_boxes = heads.convert("xyxy").bbox, tails.convert("xyxy").bbox
    union = torch.cat([torch.min(head_boxes[:, :2], tail_boxes[:, :2]),
                       torch.max(head_boxes[:, 2:], tail_boxes[:, 2:])], dim=1)
    return BoxList(union, heads.size, "xyxy")


def box_pair_masks(heads: BoxList, tails: BoxList, canvas_size: int) -> torch.Tensor:
    """``[R, 2, S, S]`` binary masks of the head and tail boxes drawn on an S x S canvas.

    Boxes are rescaled per axis from the image to the canvas; a canvas cell is
    inside a box when ``floor(x1) <= x <= ceil(x2)`` and likewise for y.
    """
    coords = torch.arange(canvas_size, dtype=torch.float32, device=heads.bbox.device)
    masks = []
    for boxes in (heads, tails):
        b = boxes.resize((canvas_size, canvas_size)).bbox
        inside_x = (coords[None, :] >= b[:, 0:1].floor()) & (coords[None, :] <= b[:, 2:3].ceil())
        inside_y = (coords[None, :] >= b[:, 1:2].floor()) & (coords[None, :] <= b[:, 3:4].ceil())
        masks.append((inside_y[:, :, None] & inside_x[:, None, :]).float())
    return torch.stack(masks, dim=1)


def make_rect_conv(out_channels: int) -> nn.Sequential:
    """Conv stack that turns the 2-channel box masks into a 7x7 map (benchmark layer indices)."""
    return nn.Sequential(
        nn.Conv2d(2, out_channels // 2, kernel_size=7, stride=2, padding=3, bias=True),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels // 2, momentum=0.01),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.Conv2d(out_channels // 2, out_channels, kernel_size=3, stride=1, padding=1, bias=True),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels, momentum=0.01),
    )


@registry.ROI_RELATION_FEATURE_EXTRACTORS.register("RelationFeatureExtractor")
class RelationFeatureExtractor(nn.Module):
    """``feature_extractor`` (union-box pooling + fc6/fc7) with the ``rect_conv`` layout branch added
    before the MLP.

    Args:
        feature_extractor: a box feature extractor whose ``pooler`` gives ``[R, C, r, r]`` and
            whose ``forward_without_pool`` applies the MLP.
        in_channels: channels C of the pooled features.
        separate_spatial: CAUSAL.SEPARATE_SPATIAL: the layout branch is not added to the pooled
            appearance but goes through its own MLP ``spatial_fc`` (C r r -> out/2 -> out), and the
            features are the pair ``(appearance, layout)``, as the causal predictor expects.
    """

    def __init__(self, feature_extractor: nn.Module, in_channels: int, separate_spatial: bool = False) -> None:
        super().__init__()
        self.feature_extractor = feature_extractor
        self.out_channels = feature_extractor.out_channels
        resolution = feature_extractor.pooler.output_size[0]
        self.separate_spatial = separate_spatial
        if separate_spatial:
            self.spatial_fc = nn.Sequential(make_fc(in_channels * resolution * resolution, self.out_channels // 2),
                                            nn.ReLU(inplace=True),
                                            make_fc(self.out_channels // 2, self.out_channels), nn.ReLU(inplace=True))
        self.rect_size = resolution * 4 - 1
        self.rect_conv = make_rect_conv(in_channels)

    @classmethod
    def from_config(cls, cfg, in_channels: int) -> "RelationFeatureExtractor":
        head = cfg.MODEL.ROI_RELATION_HEAD
        extractor = make_roi_box_feature_extractor(cfg, in_channels, cat_all_levels=head.POOLING_ALL_LEVELS)
        return cls(extractor, in_channels, separate_spatial=head.CAUSAL.SEPARATE_SPATIAL)

    def forward(self, x: Sequence[torch.Tensor], proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor]
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """``[sum of pairs, out_channels]`` features for every pair of every image, in order
        (with ``separate_spatial``, the appearance and the layout features of that size)."""
        unions, masks = [], []
        for proposal, pairs in zip(proposals, rel_pair_idxs):
            heads, tails = proposal[pairs[:, 0]], proposal[pairs[:, 1]]
            unions.append(union_boxes(heads, tails))
            masks.append(box_pair_masks(heads, tails, self.rect_size))
        visual = self.feature_extractor.pooler(x, unions)
        layout = self.rect_conv(torch.cat(masks, dim=0).to(visual.dtype))
        if self.separate_spatial:
            return self.feature_extractor.forward_without_pool(visual), self.spatial_fc(layout.flatten(1))
        return self.feature_extractor.forward_without_pool(visual + layout)


def make_roi_relation_feature_extractor(cfg, in_channels: int) -> nn.Module:
    """The extractor named by MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR."""
    extractor = registry.ROI_RELATION_FEATURE_EXTRACTORS[cfg.MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR]
    return extractor.from_config(cfg, in_channels)
