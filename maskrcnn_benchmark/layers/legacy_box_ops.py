"""Box operations under the benchmark's "+1 pixel" convention: NMS and box encoding/decoding.

The benchmark measured a box as ``x2 - x1 + 1`` pixels wide everywhere, including in
its compiled NMS kernel; torchvision's NMS measures ``x2 - x1``. Moving ``x2`` and ``y2``
out by the pixel offset before calling torchvision gives exactly the legacy overlaps:
the intersection width ``min(x2) - max(x1) + 1`` and both areas gain the same offset.
A box is suppressed when its IoU with a kept box is strictly greater than the
threshold, as in the benchmark's CUDA kernel and in torchvision (the benchmark's CPU
kernel used ``>=``). The threshold is first rounded to the boxes' dtype, as the CUDA
kernel held it in a float: integer boxes often have an IoU of exactly 0.3 or 0.5, and
torchvision would otherwise compare float32(0.3) > 0.3 and suppress them.

Equal scores are taken in index order (lower index first): torchvision, like the
benchmark's kernels, leaves that order to its sort, which differs between CPU and GPU.

``legacy=False`` everywhere gives the continuous convention of torchvision.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torchvision.ops import nms as _torchvision_nms

from maskrcnn_benchmark.structures import BoxList
from maskrcnn_benchmark.structures.box_convention import pixel_offset

# Largest log-scale width/height change the box coder applies: a box grows at most 1000/16 times.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _grown(boxes: torch.Tensor, legacy: bool) -> torch.Tensor:
    """xyxy boxes with x2/y2 moved out by the pixel offset, so that continuous-convention
    overlap code computes legacy overlaps."""
    off = pixel_offset(legacy)
    if off == 0.0:
        return boxes
    return torch.cat([boxes[:, :2], boxes[:, 2:] + off], dim=1)


def _as_dtype(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (e.g. float32), returned as a Python float."""
    return torch.tensor(value, dtype=dtype, device="cpu").item()


def _greedy_keep(grown: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """torchvision NMS visiting boxes by decreasing score, equal scores in index order.

    torchvision is handed strictly decreasing stand-in scores in that visiting order, so
    its own (possibly unstable) sort cannot reorder ties. Returns kept indices in visiting order.
    """
    order = torch.sort(scores, descending=True, stable=True)[1]
    ranks = torch.arange(len(order), 0, -1, dtype=grown.dtype, device=grown.device)
    return order[_torchvision_nms(grown[order], ranks, threshold)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, legacy: bool = True) -> torch.Tensor:
    """Greedy NMS over xyxy ``boxes``; indices of the kept boxes by decreasing score (ties by index).

    The benchmark's kernel returned the same boxes in index order; :func:`boxlist_nms` does that.
    """
    return _greedy_keep(_grown(boxes, legacy), scores, _as_dtype(iou_threshold, boxes.dtype))


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float,
                legacy: bool = True) -> torch.Tensor:
    """NMS run independently for each value of ``idxs`` (e.g. each class).

    Returns the kept indices by decreasing score (ties by index). Each group is suppressed on its own
    exact coordinates (no coordinate-offset trick), so the result equals one ``nms``
    call per group.
    """
    keep_mask = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
    grown = _grown(boxes, legacy)
    threshold = _as_dtype(iou_threshold, boxes.dtype)
    for group in torch.unique(idxs):
        members = torch.nonzero(idxs == group).squeeze(1)
        keep_mask[members[_greedy_keep(grown[members], scores[members], threshold)]] = True
    keep = torch.nonzero(keep_mask).squeeze(1)
    order = torch.sort(scores[keep], descending=True, stable=True)[1]
    return keep[order]


def boxlist_nms(boxlist: BoxList, nms_thresh: float, max_proposals: int = -1,
                score_field: str = "scores", legacy: bool = True) -> Tuple[BoxList, torch.Tensor]:
    """NMS on a BoxList by its ``score_field``; keeps at most ``max_proposals`` (all if <= 0).

    As in the benchmark, whose NMS kernel returned the kept indices in ascending index
    order, the cap takes the first ``max_proposals`` survivors in the boxlist's order, not
    the best-scoring ones; on a boxlist sorted by score the two agree. Returns the kept
    BoxList (in its original mode) and the kept indices, ascending. A threshold <= 0 keeps
    everything, as in the benchmark.
    """
    if nms_thresh <= 0:
        return boxlist, torch.arange(len(boxlist), device=boxlist.bbox.device)
    mode = boxlist.mode
    xyxy = boxlist.convert("xyxy", legacy)
    keep = torch.sort(nms(xyxy.bbox, xyxy.get_field(score_field), nms_thresh, legacy)).values
    if max_proposals > 0:
        keep = keep[:max_proposals]
    return xyxy[keep].convert(mode, legacy), keep


def remove_small_boxes(boxlist: BoxList, min_size: float, legacy: bool = True) -> BoxList:
    """Drop boxes narrower or shorter than ``min_size`` (widths with the pixel offset)."""
    off = pixel_offset(legacy)
    box = boxlist.convert("xyxy", legacy).bbox
    widths = box[:, 2] - box[:, 0] + off
    heights = box[:, 3] - box[:, 1] + off
    keep = torch.nonzero((widths >= min_size) & (heights >= min_size)).squeeze(1)
    return boxlist[keep]


def _centres_and_sizes(boxes: torch.Tensor, off: float) -> Tuple[torch.Tensor, ...]:
    widths = boxes[:, 2] - boxes[:, 0] + off
    heights = boxes[:, 3] - boxes[:, 1] + off
    return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights


def encode_boxes(reference_boxes: torch.Tensor, proposals: torch.Tensor, weights: Sequence[float],
                 legacy: bool = True) -> torch.Tensor:
    """Regression targets ``[N, 4]`` (dx, dy, dw, dh) that move ``proposals`` onto ``reference_boxes``."""
    off = pixel_offset(legacy)
    wx, wy, ww, wh = weights
    ex_x, ex_y, ex_w, ex_h = _centres_and_sizes(proposals, off)
    gt_x, gt_y, gt_w, gt_h = _centres_and_sizes(reference_boxes, off)
    return torch.stack((wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                        ww * torch.log(gt_w / ex_w), wh * torch.log(gt_h / ex_h)), dim=1)


def decode_boxes(rel_codes: torch.Tensor, boxes: torch.Tensor, weights: Sequence[float],
                 bbox_xform_clip: float = BBOX_XFORM_CLIP, legacy: bool = True) -> torch.Tensor:
    """Apply regression ``rel_codes`` ``[N, 4k]`` (k boxes per row, e.g. one per class) to ``boxes`` ``[N, 4]``.

    Width and height changes are clamped at ``bbox_xform_clip`` before exponentiation.
    """
    off = pixel_offset(legacy)
    boxes = boxes.to(rel_codes.dtype)
    ctr_x, ctr_y, widths, heights = _centres_and_sizes(boxes, off)
    wx, wy, ww, wh = weights
    dx = rel_codes[:, 0::4] / wx
    dy = rel_codes[:, 1::4] / wy
    dw = torch.clamp(rel_codes[:, 2::4] / ww, max=bbox_xform_clip)
    dh = torch.clamp(rel_codes[:, 3::4] / wh, max=bbox_xform_clip)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    pred = torch.stack((pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h,
                        pred_ctr_x + 0.5 * pred_w - off, pred_ctr_y + 0.5 * pred_h - off), dim=2)
    return pred.reshape(rel_codes.shape)
