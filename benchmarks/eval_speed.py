"""Speed and memory of the SGG evaluator on VG150-test-shaped predictions generated in memory.

    python benchmarks/eval_speed.py [--num-images 26446] [--modes predcls sgdet] [--seed 0] [--tree TREE.json]

Each image is generated just before it is evaluated and dropped afterwards, so
the peak RSS is the evaluator's (plus the interpreter and torch). Shapes follow
VG150 test: about 12 objects and 6 relations per image; PredCls scores every
ordered pair of GT objects, SGDet 80 detections and their 6,320 ordered pairs,
51 scores each, rows in the post-processor's triplet-score order.

"rel" is the time spent in ``SGGEvaluator.add`` (relation metrics, plus copying
the image's boxes for the COCO evaluation), "box" the COCO evaluation at the
end. Generation is not timed. Runs on one thread. With ``--tree`` (a predicate tree
with parent links, e.g. configs/hierarchy/vg150_cogtree_tree.json) a second
evaluator with the hierarchy metrics gets every image right after the first, and
the ratio of their relation times is reported. The last line is one JSON object
with the per-image seconds, the ratios, the peak RSS and the number of images.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy

logger = logging.getLogger("eval_speed")

VG150_TEST_IMAGES = 26446
NUM_CLASSES, NUM_PREDICATES = 150, 50
SGDET_DETECTIONS = 80


def _boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    x1 = rng.uniform(0, width * 0.8, n)
    y1 = rng.uniform(0, height * 0.8, n)
    w = rng.uniform(0.05, 0.5, n) * width
    h = rng.uniform(0.05, 0.5, n) * height
    boxes = np.stack([x1, y1, np.minimum(x1 + w, width - 1), np.minimum(y1 + h, height - 1)], axis=1)
    return np.floor(boxes).astype(np.float32)


def _softmax_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    logits = rng.standard_normal((rows, NUM_PREDICATES + 1), dtype=np.float32) * 2
    logits[:, 0] += 2.0
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def make_image(rng: np.random.Generator, mode: str) -> Tuple[BoxList, BoxList]:
    """One VG150-test-shaped (groundtruth, prediction) pair in the benchmark's field conventions."""
    width, height = int(rng.integers(500, 1025)), int(rng.integers(375, 1025))
    num_gt = int(np.clip(rng.poisson(12), 2, 60))
    gt_boxes = _boxes(rng, num_gt, width, height)
    gt_labels = rng.integers(1, NUM_CLASSES + 1, num_gt)
    num_rels = int(np.clip(rng.poisson(6), 1, num_gt * (num_gt - 1)))
    pairs = rng.choice(num_gt * (num_gt - 1), num_rels, replace=False)
    sub = pairs // (num_gt - 1)
    obj = pairs % (num_gt - 1)
    obj = obj + (obj >= sub)
    gt_rels = np.stack([sub, obj, rng.integers(1, NUM_PREDICATES + 1, num_rels)], axis=1)

    if mode == "sgdet":
        copies = rng.integers(0, num_gt, SGDET_DETECTIONS // 2)
        jitter = rng.normal(0, 4, (len(copies), 4)).astype(np.float32)
        det_boxes = np.concatenate([gt_boxes[copies] + jitter,
                                    _boxes(rng, SGDET_DETECTIONS - len(copies), width, height)])
        det_boxes = np.clip(det_boxes, 0, [width - 1, height - 1, width - 1, height - 1]).astype(np.float32)
        det_labels = np.concatenate([gt_labels[copies], rng.integers(1, NUM_CLASSES + 1, SGDET_DETECTIONS)])
        det_labels = det_labels[:SGDET_DETECTIONS]
        noisy = rng.random(SGDET_DETECTIONS) < 0.3
        det_labels[noisy] = rng.integers(1, NUM_CLASSES + 1, int(noisy.sum()))
        det_scores = rng.uniform(0.05, 1.0, SGDET_DETECTIONS).astype(np.float32)
    else:
        det_boxes, det_labels = gt_boxes, gt_labels
        det_scores = np.ones(num_gt, dtype=np.float32)
    n = len(det_boxes)
    sub, obj = np.nonzero(~np.eye(n, dtype=bool))
    rel_scores = _softmax_rows(rng, len(sub))
    triplet = rel_scores[:, 1:].max(axis=1) * det_scores[sub] * det_scores[obj]
    order = np.argsort(-triplet, kind="stable")

    gt = BoxList(torch.from_numpy(gt_boxes), (width, height), "xyxy")
    gt.add_field("labels", torch.from_numpy(gt_labels))
    gt.add_field("relation_tuple", torch.from_numpy(gt_rels))
    pred = BoxList(torch.from_numpy(det_boxes), (width, height), "xyxy")
    pred.add_field("pred_labels", torch.from_numpy(det_labels))
    pred.add_field("pred_scores", torch.from_numpy(det_scores))
    pred.add_field("rel_pair_idxs", torch.from_numpy(np.stack([sub, obj], axis=1)[order]))
    pred.add_field("pred_rel_scores", torch.from_numpy(rel_scores[order]))
    return gt, pred


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_mode(mode: str, num_images: int, seed: int, hierarchy: Optional[PredicateHierarchy] = None
             ) -> Dict[str, float]:
    """Evaluate ``num_images`` generated images; seconds per image for relations and boxes (and, with
    ``hierarchy``, for an evaluator that adds the hierarchy metrics, on the same images)."""
    rng = np.random.default_rng(seed)
    zeroshot = np.stack([rng.integers(1, NUM_CLASSES + 1, 5971), rng.integers(1, NUM_CLASSES + 1, 5971),
                         rng.integers(1, NUM_PREDICATES + 1, 5971)], axis=1)
    train_counts = np.concatenate([[0], np.sort(rng.zipf(1.5, NUM_PREDICATES))[::-1]])
    evaluator = SGGEvaluator(mode, NUM_PREDICATES, zeroshot_triplets=zeroshot, train_predicate_counts=train_counts)
    with_tree = None if hierarchy is None else SGGEvaluator(
        mode, NUM_PREDICATES, zeroshot_triplets=zeroshot, train_predicate_counts=train_counts, hierarchy=hierarchy)
    rel_wall = rel_cpu = tree_wall = 0.0
    for index in range(num_images):
        gt, pred = make_image(rng, mode)
        wall, cpu = time.perf_counter(), time.process_time()
        evaluator.add(gt, pred, image_id=index)
        rel_wall += time.perf_counter() - wall
        rel_cpu += time.process_time() - cpu
        if with_tree is not None:
            wall = time.perf_counter()
            with_tree.add(gt, pred, image_id=index)
            tree_wall += time.perf_counter() - wall
        if (index + 1) % 5000 == 0:
            logger.info("%s: %d images, %.5f s/image so far, peak RSS %.0f MiB",
                        mode, index + 1, rel_wall / (index + 1), peak_rss_mib())
    wall, cpu = time.perf_counter(), time.process_time()
    detection = evaluator.detection_result()
    box_wall, box_cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = evaluator.result()
    logger.info("%s: R@100 %.4f, mAP50 %.4f", mode, result["metrics"]["R@K"]["100"], detection["mAP50"])
    for what, total, cpu_total in (("rel", rel_wall, rel_cpu), ("box", box_wall, box_cpu)):
        logger.info("%s %s: %.5f s/image (CPU %.5f), %.1f s for %d images, projected %.0f s for %d",
                    mode, what, total / num_images, cpu_total / num_images, total, num_images,
                    total / num_images * VG150_TEST_IMAGES, VG150_TEST_IMAGES)
    out = {f"{mode}_rel_s_per_image": rel_wall / num_images, f"{mode}_box_s_per_image": box_wall / num_images}
    if with_tree is not None:
        hr = with_tree.result()["metrics"]["HR@K"]["100"]
        logger.info("%s with the hierarchy metrics: %.5f s/image (%.2fx), HR@100 %.4f",
                    mode, tree_wall / num_images, tree_wall / rel_wall, hr)
        out.update({f"{mode}_rel_tree_s_per_image": tree_wall / num_images,
                    f"{mode}_tree_over_plain": tree_wall / rel_wall})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=VG150_TEST_IMAGES)
    parser.add_argument("--modes", nargs="+", default=["predcls", "sgdet"], choices=["predcls", "sgcls", "sgdet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tree", help="predicate tree with parent links: also time the hierarchy metrics")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    summary: Dict[str, float] = {}
    hierarchy = PredicateHierarchy.from_json(args.tree) if args.tree else None
    for mode in args.modes:
        summary.update(run_mode(mode, args.num_images, args.seed, hierarchy))
        logger.info("peak RSS after %s: %.0f MiB", mode, peak_rss_mib())
    summary.update(peak_rss_mib=round(peak_rss_mib(), 1), num_images=args.num_images)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
