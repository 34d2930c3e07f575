"""A chunk of images as the flat COCO annotations the benchmark's faux COCO would hold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np


@dataclass
class CocoChunk:
    """GT and detection annotations of consecutive images (sorted image ids).

    ``*_image`` are positions in ``image_ids``; boxes are COCO xywh float64.
    GT: ``x1, y1, x2 - x1 + 1, y2 - y1 + 1`` and area ``(y2 - y1 + 1) * (x2 - x1 + 1)``
    from the float32 corners, as the benchmark writes them. Detections: the
    width/height ``x2 - x1 + 1`` computed in float32 (the benchmark's
    ``convert("xywh")``), then float64, area ``w * h`` as ``COCO.loadRes``.
    """

    image_ids: np.ndarray
    gt_image: np.ndarray
    gt_category: np.ndarray
    gt_xywh: np.ndarray
    gt_area: np.ndarray
    gt_id: np.ndarray
    det_image: np.ndarray
    det_category: np.ndarray
    det_xywh: np.ndarray
    det_area: np.ndarray
    det_score: np.ndarray
    det_id: np.ndarray


def _image_index(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.repeat(np.arange(len(parts)), [len(p) for p in parts])


def make_chunk(image_ids: List[int], gt_boxes: List[np.ndarray], gt_labels: List[np.ndarray],
               det_boxes: List[np.ndarray], det_scores: List[np.ndarray], det_labels: List[np.ndarray],
               first_gt_id: int, first_det_id: int) -> CocoChunk:
    """Flatten per-image arrays (xyxy float32) of consecutive images into a ``CocoChunk``.

    Annotation ids run on from ``first_gt_id`` / ``first_det_id`` in image order.
    """
    gt = np.concatenate(gt_boxes).reshape(-1, 4).astype(np.float64)
    gt_w, gt_h = gt[:, 2] - gt[:, 0] + 1, gt[:, 3] - gt[:, 1] + 1
    det = np.concatenate(det_boxes).reshape(-1, 4)
    det_xywh = np.concatenate([det[:, :2], det[:, 2:] - det[:, :2] + 1], axis=1).astype(np.float64)
    return CocoChunk(
        image_ids=np.asarray(image_ids, dtype=np.int64),
        gt_image=_image_index(gt_boxes),
        gt_category=np.concatenate(gt_labels).astype(np.int64),
        gt_xywh=np.stack([gt[:, 0], gt[:, 1], gt_w, gt_h], axis=1),
        gt_area=gt_h * gt_w,
        gt_id=first_gt_id + np.arange(len(gt), dtype=np.int64),
        det_image=_image_index(det_boxes),
        det_category=np.concatenate(det_labels).astype(np.int64),
        det_xywh=det_xywh,
        det_area=det_xywh[:, 2] * det_xywh[:, 3],
        det_score=np.concatenate(det_scores).astype(np.float64),
        det_id=first_det_id + np.arange(len(det), dtype=np.int64),
    )
