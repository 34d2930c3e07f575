"""Box-pair geometry of the causal predictor: the 32-d vector its ``spt_emb`` embeds (CAUSAL.md 2.1)."""
from __future__ import annotations

from typing import Sequence

import torch

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.box_convention import pixel_offset

BOX_INFO_DIM = 8
PAIR_BOX_DIM = 4 * BOX_INFO_DIM
MIN_NORMALISER = 100.0


def box_info(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, 8]``: x1, y1, x2, y2, cx, cy, w, h of ``[N, 4]`` xyxy boxes, with the "+1" widths."""
    wh = boxes[:, 2:] - boxes[:, :2] + pixel_offset(legacy=True)
    return torch.cat((boxes, boxes[:, :2] + 0.5 * wh, wh), dim=1)


def normalised_box_info(proposals: Sequence[BoxList]) -> torch.Tensor:
    """``[sum N, 8]`` :func:`box_info` of every image's boxes, divided by max(W, H, 100)."""
    if any(p.mode != "xyxy" for p in proposals):
        raise ValueError("the causal predictor expects proposals in xyxy mode")
    return torch.cat([box_info(p.bbox) / max(float(max(p.size)), MIN_NORMALISER) for p in proposals], dim=0)


def box_pair_info(subjects: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """``[R, 32]``: the subject's and object's normalised box info, then the info of their union
    and of their intersection boxes (all-zero when the boxes do not overlap).

    The union and intersection are re-encoded from the normalised corners, so their widths
    carry the "+1" in normalised units, as in the benchmark.
    """
    first, second = subjects[:, :4], objects[:, :4]
    union = torch.cat((torch.min(first[:, :2], second[:, :2]), torch.max(first[:, 2:], second[:, 2:])), dim=1)
    inter = torch.cat((torch.max(first[:, :2], second[:, :2]), torch.min(first[:, 2:], second[:, 2:])), dim=1)
    empty = (inter[:, 2] < inter[:, 0]) | (inter[:, 3] < inter[:, 1])
    inter_info = box_info(inter).masked_fill(empty[:, None], 0.0)
    return torch.cat((subjects, objects, box_info(union), inter_info), dim=1)
