"""Box predictors: box features -> class logits and per-class box deltas."""
from typing import Tuple

import torch
from torch import nn

from maskrcnn_benchmark.modeling import registry


@registry.ROI_BOX_PREDICTOR.register("FPNPredictor")
class FPNPredictor(nn.Module):
    """``cls_score`` (N(0, 0.01)) and ``bbox_pred`` (N(0, 0.001)), zero biases.

    Box deltas are class-specific (``4 * num_classes``) or, with ``cls_agnostic_bbox_reg``,
    for background and foreground only (8 outputs), as in the benchmark.
    """

    def __init__(self, in_channels: int, num_classes: int, cls_agnostic_bbox_reg: bool = False) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, (2 if cls_agnostic_bbox_reg else num_classes) * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.constant_(layer.bias, 0)

    @classmethod
    def from_config(cls, cfg, in_channels: int) -> "FPNPredictor":
        return cls(in_channels, cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.CLS_AGNOSTIC_BBOX_REG)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if x.ndimension() == 4:
            x = x.view(x.size(0), -1)
        return self.cls_score(x), self.bbox_pred(x)


def make_roi_box_predictor(cfg, in_channels: int) -> nn.Module:
    """The predictor named by MODEL.ROI_BOX_HEAD.PREDICTOR."""
    return registry.ROI_BOX_PREDICTOR[cfg.MODEL.ROI_BOX_HEAD.PREDICTOR].from_config(cfg, in_channels)
