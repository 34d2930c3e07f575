"""Detection mAP of the object boxes: compact per-image arrays, COCO evaluation once at the end.

The benchmark builds a faux COCO of the whole split (GT boxes as xywh with the
"+1" width, categories 1..150, image ids = dataset indices), runs pycocotools'
COCOeval and logs ``stats[1]`` (AP at IoU 0.5) as "mAp". Here each image only
appends its boxes, labels and scores to small arrays; under torch.distributed
they are gathered on rank 0, which evaluates them in chunks of images: the
per-image matching (``coco_match``, or pycocotools' own ``evaluate`` with
``matcher="pycocotools"``) is reduced to the compact records of
``coco_accumulate``, so memory stays flat however large the split.

Categories are the labels that occur; the benchmark's list of all 150 classes
gives the same numbers, because a category without GT boxes has no precision
value either way.

Annotation ids: the benchmark numbers GT annotations from 0, and pycocotools
reads a match to id 0 as "no match", so a detection of the first GT box of the
first image can never be a true positive. ``legacy_ann_ids=True`` reproduces
that (``TEST.COCO_LEGACY_ANN_IDS``); the default numbers them from 1.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch.distributed as dist

from maskrcnn_benchmark.utils.comm import get_rank, get_world_size

from .coco_accumulate import DetectionRecords, summarize
from .coco_chunk import make_chunk
from .coco_match import match_chunk
from .coco_pycocotools import match_chunk_pycocotools

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
MATCHERS = {"vectorised": match_chunk, "pycocotools": match_chunk_pycocotools}
_CHUNK_SIZE = {"vectorised": 2048, "pycocotools": 256}  # images per chunk: bounds the matcher's memory
_FIELDS = ("gt_boxes", "gt_labels", "det_boxes", "det_scores", "det_labels")


class BoxCollector:
    """Per-image GT and detected boxes kept as small arrays until ``evaluate``."""

    def __init__(self) -> None:
        self.image_ids: List[int] = []
        self._parts: Dict[str, List[np.ndarray]] = {name: [] for name in _FIELDS}

    def __len__(self) -> int:
        return len(self.image_ids)

    def add(self, image_id: int, gt_boxes: np.ndarray, gt_labels: np.ndarray, det_boxes: np.ndarray,
            det_scores: np.ndarray, det_labels: np.ndarray) -> None:
        """One image: boxes xyxy float32 in original pixels."""
        self.image_ids.append(int(image_id))
        for name, value, dtype in zip(_FIELDS, (gt_boxes, gt_labels, det_boxes, det_scores, det_labels),
                                      (np.float32, np.int32, np.float32, np.float32, np.int32)):
            self._parts[name].append(np.array(value, dtype=dtype, copy=True))

    def gather(self) -> None:
        """Move every process's images to rank 0 (no-op for one process)."""
        if get_world_size() == 1:
            return
        payload = (self.image_ids, self._parts)
        received: Optional[list] = [None] * get_world_size() if get_rank() == 0 else None
        dist.gather_object(payload, received, dst=0)
        self.image_ids, self._parts = [], {name: [] for name in _FIELDS}
        if received is not None:
            for ids, parts in received:
                self.image_ids.extend(ids)
                for name in _FIELDS:
                    self._parts[name].extend(parts[name])

    def evaluate(self, legacy_ann_ids: bool = False, matcher: str = "vectorised",
                 chunk_size: Optional[int] = None) -> Dict[str, object]:
        """COCO bbox evaluation of all collected images: ``mAP50`` and the 12 ``coco_stats``."""
        if matcher not in MATCHERS:
            raise ValueError(f"matcher should be one of {sorted(MATCHERS)}, got {matcher!r}")
        if len(set(self.image_ids)) != len(self.image_ids):
            raise ValueError("image ids repeat; pass distinct image_id values (the dataset index) to add()")
        order = np.argsort(np.asarray(self.image_ids, dtype=np.int64), kind="stable")
        labels = self._parts["gt_labels"] + self._parts["det_labels"]
        categories = np.unique(np.concatenate(labels)) if labels else np.zeros(0, dtype=np.int64)
        records = DetectionRecords(len(categories))
        chunk_size = chunk_size or _CHUNK_SIZE[matcher]
        next_gt_id, next_det_id = (0 if legacy_ann_ids else 1), 1
        for start in range(0, len(order), chunk_size):
            chunk_images = order[start:start + chunk_size]
            chunk = make_chunk([self.image_ids[i] for i in chunk_images],
                               *([self._parts[name][i] for i in chunk_images] for name in _FIELDS),
                               first_gt_id=next_gt_id, first_det_id=next_det_id)
            next_gt_id += len(chunk.gt_id)
            next_det_id += len(chunk.det_id)
            MATCHERS[matcher](chunk, categories, records)
        stats = summarize(records.accumulate())
        return {"mAP50": stats[1], "coco_stats": stats, "coco_stat_names": list(COCO_STAT_NAMES),
                "legacy_ann_ids": legacy_ann_ids, "num_images": len(order)}
