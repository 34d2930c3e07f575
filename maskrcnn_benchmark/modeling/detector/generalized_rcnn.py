"""GeneralizedRCNN: backbone -> RPN -> ROI heads, with the benchmark's forward contract."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from maskrcnn_benchmark.structures import BoxList, ImageList, to_image_list

from ..backbone import build_backbone
from ..roi_heads.roi_heads import CombinedROIHeads, build_roi_heads
from ..rpn.rpn import RPNModule, build_rpn


class GeneralizedRCNN(nn.Module):
    """``backbone`` (``body`` + ``fpn``), ``rpn`` and ``roi_heads`` (``box``, ``relation``).

    Training returns a dict of losses: RPN and box losses for a detector; only the
    relation head's losses when ``relation_on`` (the detector is frozen then). Testing
    returns one BoxList per image.
    """

    def __init__(self, backbone: nn.Module, rpn: RPNModule, roi_heads: CombinedROIHeads,
                 relation_on: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.relation_on = relation_on

    @classmethod
    def from_config(cls, cfg, statistics: Optional[Mapping[str, Any]] = None) -> "GeneralizedRCNN":
        """``statistics``: the relation head's (see ``build_roi_heads``)."""
        backbone = build_backbone(cfg)
        return cls(backbone, build_rpn(cfg, backbone.out_channels),
                   build_roi_heads(cfg, backbone.out_channels, statistics), cfg.MODEL.RELATION_ON)

    def forward(self, images: Union[ImageList, Sequence[torch.Tensor], torch.Tensor],
                targets: Optional[Sequence[BoxList]] = None,
                logger=None) -> Union[Dict[str, torch.Tensor], List[BoxList]]:
        """``images``: an ImageList (or tensors); ``targets``: ground truth per image (needed
        in training and by the relation modes); ``logger`` is passed to the relation head."""
        if self.training and targets is None:
            raise ValueError("In training mode, targets should be passed")
        images = to_image_list(images)
        features = self.backbone(images.tensors)
        if self.roi_heads.needs_proposals:
            proposals, proposal_losses = self.rpn(images, features, targets)
        else:
            proposals, proposal_losses = None, {}
        _, result, detector_losses = self.roi_heads(features, proposals, targets, logger)
        if not self.training:
            return result
        losses = dict(detector_losses)
        if not self.relation_on:
            losses.update(proposal_losses)
        return losses
