"""The ROI heads of the detector: ``box``, and ``relation`` when MODEL.RELATION_ON."""
from __future__ import annotations

import importlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.structures import BoxList

from .box_head.box_head import build_roi_box_head

_RELATION_HEAD_PACKAGE = __name__.rsplit(".", 1)[0] + ".relation_head"


class CombinedROIHeads(nn.ModuleDict):
    """Runs ``box`` then, if present, ``relation`` on the box head's boxes.

    With a relation head only the relation losses are returned: the detector is frozen
    during relation training, as in the benchmark.
    """

    def __init__(self, heads: Dict[str, nn.Module]) -> None:
        super().__init__(heads)

    @property
    def needs_proposals(self) -> bool:
        """False when the box head uses ground-truth boxes, so the RPN need not run."""
        return not self["box"].uses_gt_boxes

    def forward(self, features: Sequence[torch.Tensor], proposals: Optional[Sequence[BoxList]],
                targets: Optional[Sequence[BoxList]] = None, logger=None
                ) -> Tuple[torch.Tensor, List[BoxList], Dict[str, torch.Tensor]]:
        x, detections, box_losses = self["box"](features, proposals, targets)
        if "relation" not in self:
            return x, detections, box_losses
        return self["relation"](features, detections, targets, logger)


def _relation_head_builder():
    """``build_roi_relation_head`` from the relation_head package, imported only when needed."""
    try:
        module = importlib.import_module(_RELATION_HEAD_PACKAGE)
    except ModuleNotFoundError as err:
        if err.name != _RELATION_HEAD_PACKAGE:
            raise
        raise RuntimeError(f"MODEL.RELATION_ON is True but the relation head package {_RELATION_HEAD_PACKAGE} "
                           f"is not installed; set MODEL.RELATION_ON False to build the detector only") from err
    return module.build_roi_relation_head


def build_roi_heads(cfg, in_channels: int, statistics: Optional[Mapping[str, Any]] = None) -> CombinedROIHeads:
    """``box`` head, plus ``relation`` (built by the relation_head package) when MODEL.RELATION_ON;
    ``statistics`` go to the relation head (None: the training set's)."""
    for key in ("MASK_ON", "KEYPOINT_ON", "ATTRIBUTE_ON", "RETINANET_ON", "RPN_ONLY"):
        if cfg.MODEL[key]:
            raise ValueError(f"MODEL.{key} is not supported")
    heads = {"box": build_roi_box_head(cfg, in_channels)}
    if cfg.MODEL.RELATION_ON:
        heads["relation"] = _relation_head_builder()(cfg, in_channels, statistics)
    return CombinedROIHeads(heads)
