"""The same matching done by pycocotools' own ``COCOeval.evaluate`` (slow; the reference path)."""
from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .coco_accumulate import NUM_AREAS, DetectionRecords, pack_bits
from .coco_chunk import CocoChunk


def _coco(images: list, anns: list, categories: np.ndarray) -> COCO:
    coco = COCO()
    coco.dataset = {"images": [{"id": i} for i in images], "annotations": anns,
                    "categories": [{"id": int(c), "name": str(c)} for c in categories]}
    coco.createIndex()
    return coco


def _annotations(chunk: CocoChunk, prefix: str) -> list:
    """COCO annotation dicts, as the benchmark's faux COCO / ``COCO.loadRes`` hold them."""
    images = chunk.image_ids[getattr(chunk, f"{prefix}_image")].tolist()
    columns = [images, getattr(chunk, f"{prefix}_category").tolist(), getattr(chunk, f"{prefix}_xywh").tolist(),
               getattr(chunk, f"{prefix}_area").tolist(), getattr(chunk, f"{prefix}_id").tolist()]
    anns = [{"image_id": i, "category_id": c, "bbox": b, "area": ar, "id": n, "iscrowd": 0}
            for i, c, b, ar, n in zip(*columns)]
    if prefix == "det":
        for ann, score in zip(anns, chunk.det_score.tolist()):
            ann["score"] = score
    return anns


def match_chunk_pycocotools(chunk: CocoChunk, categories: np.ndarray, records: DetectionRecords) -> None:
    """Run ``COCOeval.evaluate`` on the chunk and keep its results as compact records."""
    present = np.unique(np.concatenate([chunk.gt_category, chunk.det_category])).tolist()
    if not present:
        return
    images = chunk.image_ids.tolist()
    with contextlib.redirect_stdout(io.StringIO()):
        cocoeval = COCOeval(_coco(images, _annotations(chunk, "gt"), categories),
                            _coco(images, _annotations(chunk, "det"), categories), "bbox")
        cocoeval.params.imgIds = images
        cocoeval.params.catIds = present
        cocoeval.evaluate()
    cat_index = np.searchsorted(categories, present)
    groups, ranks, scores, matched, ignored = [], [], [], [], []
    for n, entry in enumerate(cocoeval.evalImgs):
        if entry is None:
            continue
        group = cat_index[n // (NUM_AREAS * len(images))] * NUM_AREAS + (n // len(images)) % NUM_AREAS
        records.num_positive_gt.reshape(-1)[group] += int(np.count_nonzero(entry["gtIgnore"] == 0))
        num_det = len(entry["dtScores"])
        groups.append(np.full(num_det, group))
        ranks.append(np.arange(num_det))
        scores.append(np.asarray(entry["dtScores"], dtype=np.float64))
        matched.append(entry["dtMatches"] != 0)
        ignored.append(entry["dtIgnore"] != 0)
    if groups:
        records.add(np.concatenate(groups), np.concatenate(ranks), np.concatenate(scores),
                    pack_bits(np.concatenate(matched, axis=1)), pack_bits(np.concatenate(ignored, axis=1)))
