"""Encode boxes as regression targets relative to reference boxes, and decode them back."""
from typing import Sequence

import torch

from maskrcnn_benchmark.layers.legacy_box_ops import (
    BBOX_XFORM_CLIP,
    decode_boxes,
    encode_boxes,
)


class BoxCoder:
    """The R-CNN (dx, dy, dw, dh) box parameterisation with per-coordinate ``weights``.

    The RPN uses weights (1, 1, 1, 1) and the box head MODEL.ROI_HEADS.BBOX_REG_WEIGHTS.
    Widths follow the benchmark's "+1" convention (``legacy=True``).
    """

    def __init__(self, weights: Sequence[float], bbox_xform_clip: float = BBOX_XFORM_CLIP,
                 legacy: bool = True) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip
        self.legacy = legacy

    def encode(self, reference_boxes: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """Targets ``[N, 4]`` that turn ``proposals`` into ``reference_boxes`` (both xyxy ``[N, 4]``)."""
        return encode_boxes(reference_boxes, proposals, self.weights, self.legacy)

    def decode(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes ``[N, 4k]`` from codes ``[N, 4k]`` applied to ``boxes`` ``[N, 4]``."""
        return decode_boxes(rel_codes, boxes, self.weights, self.bbox_xform_clip, self.legacy)
