"""Operations over BoxLists: pairwise IoU and concatenation."""
from __future__ import annotations

from typing import Sequence

import torch

from .bounding_box import BoxList
from .box_convention import pixel_offset


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, legacy: bool = True) -> torch.Tensor:
    """Pairwise IoU of two ``[N, 4]`` / ``[M, 4]`` xyxy tensors, as an ``[N, M]`` matrix."""
    off = pixel_offset(legacy)
    area1 = (boxes1[:, 2] - boxes1[:, 0] + off) * (boxes1[:, 3] - boxes1[:, 1] + off)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + off) * (boxes2[:, 3] - boxes2[:, 1] + off)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt + off).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def boxlist_iou(boxlist1: BoxList, boxlist2: BoxList, legacy: bool = True) -> torch.Tensor:
    """Pairwise IoU between the boxes of two BoxLists of the same image.

    ``legacy=True`` is the benchmark's "+1" convention (used by its matchers and
    its evaluator); ``legacy=False`` is torchvision's ``box_iou``.
    """
    if boxlist1.size != boxlist2.size:
        raise ValueError(f"boxlists should have the same image size, got {boxlist1} and {boxlist2}")
    return box_iou(boxlist1.convert("xyxy", legacy).bbox, boxlist2.convert("xyxy", legacy).bbox, legacy)


def cat_boxlist(bboxes: Sequence[BoxList]) -> BoxList:
    """Concatenate BoxLists of one image that carry the same fields.

    Pairwise (triplet) fields are joined block-diagonally: pairs across the
    concatenated parts get 0 (no relation).
    """
    if not bboxes:
        raise ValueError("cat_boxlist needs at least one BoxList")
    size, mode = bboxes[0].size, bboxes[0].mode
    fields = bboxes[0].fields()
    for b in bboxes:
        if b.size != size or b.mode != mode or set(b.fields()) != set(fields):
            raise ValueError("cat_boxlist needs BoxLists with the same size, mode and fields")
    out = BoxList(torch.cat([b.bbox for b in bboxes], dim=0), size, mode)
    for field in fields:
        parts = [b.get_field(field) for b in bboxes]
        if field in bboxes[0].triplet_extra_fields:
            out.add_field(field, torch.block_diag(*parts), is_triplet=True)
        else:
            out.add_field(field, torch.cat(parts, dim=0))
    return out
