"""Seconds per relation training iteration at the benchmark's full dimensions, on this machine.

Builds the X-101-32x8d-FPN + predictor model of configs/e2e_relation_X_101_32_8_FPN_1x.yaml with
random weights (random dataset statistics and word vectors: values do not change the cost), feeds
batches of synthetic 600 px images with ground-truth boxes and relations (PredCls by default), and
times full training steps (forward, backward, SGD step). The last output line is one JSON object:
{"predictor": .., "mode": .., "batch": .., "seconds_per_iter": .., "forward_s": .., "threads": ..}.

    python benchmarks/relation_train_step.py [--predictor MotifPredictor] [--batch 2] [--iters 3]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time

import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.engine.relation_train import freeze_detector
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.roi_heads.relation_head import relation_head
from maskrcnn_benchmark.solver import make_optimizer
from random_relation_batch import random_relation_batch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}


def random_statistics(num_classes: int = 151, num_predicates: int = 51) -> dict:
    return {"obj_classes": ["__background__"] + [f"class{i}" for i in range(num_classes - 1)],
            "rel_classes": ["__background__"] + [f"predicate{i}" for i in range(num_predicates - 1)],
            "att_classes": ["__background__"], "pred_dist": torch.randn(num_classes, num_classes, num_predicates)}


def synthetic_batch(batch: int, num_boxes: int, num_rels: int, size=(800, 600), seed: int = 0):
    """Images and targets shaped like VG150 at the yaml's 600 px (boxes, labels, relation maps)."""
    return random_relation_batch(batch, size, num_boxes, num_rels, 151, 51, 30.0, 32, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default="MotifPredictor")
    parser.add_argument("--mode", default="predcls", choices=sorted(MODES))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations (after one warm-up)")
    parser.add_argument("--boxes", type=int, default=12)
    parser.add_argument("--rels", type=int, default=6)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    use_gt_box, use_gt_label = MODES[args.mode]
    cfg = default_cfg.clone()
    cfg.merge_from_file(os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml"))
    with tempfile.TemporaryDirectory() as glove_dir:
        with open(os.path.join(glove_dir, "glove.6B.200d.txt"), "w") as f:
            f.write("start " + " ".join(["0.1"] * 200) + "\n")
        cfg.merge_from_list(["GLOVE_DIR", glove_dir, "MODEL.DEVICE", "cpu",
                             "MODEL.ROI_RELATION_HEAD.PREDICTOR", args.predictor,
                             "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", use_gt_box,
                             "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", use_gt_label])
        relation_head.get_dataset_statistics = lambda config: random_statistics()
        model = build_detection_model(cfg)
    freeze_detector(model)
    model.train()
    optimizer = make_optimizer(cfg, model, rl_factor=float(args.batch))
    images, targets = synthetic_batch(args.batch, args.boxes, args.rels)

    step_times, forward_times = [], []
    for step in range(args.iters + 1):
        start = time.perf_counter()
        losses = model(images, targets)
        forward_end = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        if step > 0:
            step_times.append(time.perf_counter() - start)
            forward_times.append(forward_end - start)
    print(json.dumps({"predictor": args.predictor, "mode": args.mode, "batch": args.batch,
                      "seconds_per_iter": round(statistics.median(step_times), 3),
                      "forward_s": round(statistics.median(forward_times), 3), "threads": args.threads}))


if __name__ == "__main__":
    main()
