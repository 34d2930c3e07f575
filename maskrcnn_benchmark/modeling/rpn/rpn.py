"""Region Proposal Network: shared head over all levels, anchors, proposals and losses."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.modeling import registry
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.structures import BoxList, ImageList

from .anchor_generator import AnchorGenerator, make_anchor_generator
from .inference import RPNPostProcessor, make_rpn_postprocessor
from .loss import RPNLossComputation, make_rpn_loss_evaluator


@registry.RPN_HEADS.register("SingleConvRPNHead")
class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 convs to ``num_anchors`` objectness logits and
    ``4 * num_anchors`` box deltas, applied to each level (weights N(0, 0.01), zero bias)."""

    def __init__(self, in_channels: int, mid_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, mid_channels, kernel_size=3, stride=1, padding=1)
        self.cls_logits = nn.Conv2d(mid_channels, num_anchors, kernel_size=1, stride=1)
        self.bbox_pred = nn.Conv2d(mid_channels, num_anchors * 4, kernel_size=1, stride=1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    @classmethod
    def from_config(cls, cfg, in_channels: int, num_anchors: int) -> "RPNHead":
        return cls(in_channels, cfg.MODEL.RPN.RPN_MID_CHANNEL, num_anchors)

    def forward(self, x: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        logits, bbox_reg = [], []
        for feature in x:
            t = F.relu(self.conv(feature))
            logits.append(self.cls_logits(t))
            bbox_reg.append(self.bbox_pred(t))
        return logits, bbox_reg


class RPNModule(nn.Module):
    """Anchors + head + proposal selection (train/test settings by ``self.training``) + losses.

    ``loss_evaluator`` is None when the RPN is frozen for relation training: its losses
    would be discarded there, so they are not computed; proposals still use the training
    settings (and ground-truth boxes when ``add_gt``) in training mode.
    """

    def __init__(self, anchor_generator: AnchorGenerator, head: nn.Module, box_selector_train: RPNPostProcessor,
                 box_selector_test: RPNPostProcessor, loss_evaluator: Optional[RPNLossComputation]) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_selector_train = box_selector_train
        self.box_selector_test = box_selector_test
        self.loss_evaluator = loss_evaluator

    def forward(self, images: ImageList, features: Sequence[torch.Tensor],
                targets: Optional[Sequence[BoxList]] = None) -> Tuple[List[BoxList], Dict[str, torch.Tensor]]:
        """Proposals (one BoxList per image, field ``objectness``) and the losses (empty at test)."""
        objectness, rpn_box_regression = self.head(features)
        anchors = self.anchor_generator(images, features)
        if not self.training:
            return self.box_selector_test(anchors, objectness, rpn_box_regression), {}
        with torch.no_grad():
            boxes = self.box_selector_train(anchors, objectness, rpn_box_regression, targets)
        if self.loss_evaluator is None:
            return boxes, {}
        if targets is None:
            raise ValueError("RPN training needs targets")
        loss_objectness, loss_rpn_box_reg = self.loss_evaluator(anchors, objectness, rpn_box_regression, targets)
        return boxes, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}


def build_rpn(cfg, in_channels: int) -> RPNModule:
    """RPN from cfg.MODEL.RPN; no losses when MODEL.RELATION_ON (the detector is frozen then)."""
    anchor_generator = make_anchor_generator(cfg)
    num_anchors = anchor_generator.num_anchors_per_location()[0]
    head = registry.RPN_HEADS[cfg.MODEL.RPN.RPN_HEAD].from_config(cfg, in_channels, num_anchors)
    box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    loss_evaluator = None if cfg.MODEL.RELATION_ON else make_rpn_loss_evaluator(cfg, box_coder)
    return RPNModule(anchor_generator, head, make_rpn_postprocessor(cfg, box_coder, is_train=True),
                     make_rpn_postprocessor(cfg, box_coder, is_train=False), loss_evaluator)
