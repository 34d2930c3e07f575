"""The streaming COCO box evaluation equals pycocotools run the benchmark's way on the whole set.

Random images with ties in scores, duplicate GT boxes, boxes of every area range,
more than 100 detections of one category in an image, images without GT or
without detections; chunk boundaries anywhere; ann ids from 0 (legacy) or 1.
"""
from __future__ import annotations

import contextlib
import io
from typing import List

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskrcnn_benchmark.data.datasets.evaluation.vg.coco_boxes import BoxCollector


def _random_images(seed: int) -> List[dict]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(24):
        num_gt = int(rng.integers(0, 12)) if i != 1 else 0
        corner = rng.integers(0, 250, (num_gt, 2))
        gt = np.concatenate([corner, corner + rng.choice([5, 20, 40, 120], (num_gt, 2))], axis=1)
        if num_gt > 2:
            gt[1] = gt[0]  # duplicate GT box
        num_det = 130 if i == 3 else (0 if i == 2 else int(rng.integers(0, 40)))
        pick = rng.integers(0, max(num_gt, 1), num_det)
        det = (gt[pick] if num_gt else np.zeros((num_det, 4))) + rng.integers(-6, 7, (num_det, 4))
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
        gt_labels = rng.integers(1, 5, num_gt)
        det_labels = gt_labels[pick] if num_gt else rng.integers(1, 5, num_det)
        noisy = rng.random(num_det) < 0.3
        det_labels[noisy] = rng.integers(1, 5, int(noisy.sum()))
        images.append({
            "image_id": i,
            "gt_boxes": gt.astype(np.float32),
            "gt_labels": gt_labels,
            "det_boxes": det.astype(np.float32),
            "det_scores": (rng.integers(1, 8, num_det) / 8).astype(np.float32),
            "det_labels": np.ones(num_det, dtype=np.int64) if i == 3 else det_labels,
        })
    return images


def _benchmark_stats(images: List[dict], legacy: bool) -> np.ndarray:
    """pycocotools on one faux COCO of all images, built as the benchmark builds it."""
    anns = []
    for im in images:
        for (x1, y1, x2, y2), label in zip(im["gt_boxes"].tolist(), im["gt_labels"].tolist()):
            anns.append({"area": (y2 - y1 + 1) * (x2 - x1 + 1), "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                         "category_id": label, "id": len(anns) + (0 if legacy else 1),
                         "image_id": im["image_id"], "iscrowd": 0})
    rows = []
    for im in images:
        b = im["det_boxes"]
        xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2] + 1], axis=1)
        rows.append(np.column_stack([np.full(len(b), im["image_id"]), xywh, im["det_scores"], im["det_labels"]]))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": im["image_id"]} for im in images], "annotations": anns,
                        "categories": [{"id": c, "name": str(c)} for c in range(1, 151)]}
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(np.concatenate(rows)), "bbox")
        evaluation.params.imgIds = [im["image_id"] for im in images]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def _collector(images: List[dict], order: List[int]) -> BoxCollector:
    collector = BoxCollector()
    for i in order:
        im = images[i]
        collector.add(im["image_id"], im["gt_boxes"], im["gt_labels"], im["det_boxes"], im["det_scores"],
                      im["det_labels"])
    return collector


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("legacy", [False, True])
def test_vectorised_matcher_equals_pycocotools(seed, legacy):
    images = _random_images(seed)
    expected = _benchmark_stats(images, legacy)
    shuffled = list(np.random.default_rng(seed).permutation(len(images)))  # arrival order must not matter
    collector = _collector(images, shuffled)
    for matcher, chunk_size in (("vectorised", None), ("vectorised", 5), ("pycocotools", 7)):
        got = collector.evaluate(legacy_ann_ids=legacy, matcher=matcher, chunk_size=chunk_size)
        np.testing.assert_array_equal(got["coco_stats"], expected, err_msg=f"{matcher} chunk {chunk_size}")
        assert got["mAP50"] == expected[1]


def test_legacy_ids_lose_the_first_gt_box_of_the_first_image():
    box = np.array([[10, 10, 59, 59], [100, 100, 149, 149]], dtype=np.float32)
    collector = BoxCollector()
    collector.add(0, box, np.array([1, 1]), box, np.array([0.9, 0.8], dtype=np.float32), np.array([1, 1]))
    assert collector.evaluate()["mAP50"] == 1.0
    assert collector.evaluate(legacy_ann_ids=True)["mAP50"] < 1.0


def test_repeated_image_ids_are_rejected():
    box = np.zeros((1, 4), dtype=np.float32)
    collector = BoxCollector()
    for _ in range(2):
        collector.add(0, box, np.array([1]), box, np.array([1.0], dtype=np.float32), np.array([1]))
    with pytest.raises(ValueError, match="image ids repeat"):
        collector.evaluate()
