"""Evaluate scene-graph predictions stored as an SGG evaluation fixture and write metrics.json.

    python tools/sgg_eval_fixture.py FIXTURE.npz --out metrics.json [--legacy-coco-ann-ids] [--per-image]

The fixture format (version 1, ``shared/fixtures/sgg_eval/FORMAT.md``) is a
plain ``.npz`` of per-image GT and prediction arrays plus a ``.json`` beside it
naming the mode, so predictions from any codebase can be evaluated with the
benchmark's protocol. The output uses the key names of the ``.golden.json``
files (``metrics.R@K``, ``per_predicate.mR``, ``detection.mAP50`` ...); the
"SGG eval" lines are printed at the end.
"""
from __future__ import annotations

import argparse
import logging
from typing import List, Optional

import torch

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.vg.fixture import fixture_mode, iter_fixture, load_fixture
from maskrcnn_benchmark.data.datasets.visual_genome import load_info, load_label_counts


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture", metavar="FIXTURE.npz", help="fixture arrays (the .json beside it gives the mode)")
    parser.add_argument("--out", required=True, metavar="metrics.json", help="where to write the metrics")
    parser.add_argument("--mode", choices=["predcls", "sgcls", "sgdet"], help="override the mode of the .json")
    parser.add_argument("--iou-threshold", type=float, default=0.5)
    parser.add_argument("--legacy-coco-ann-ids", action="store_true",
                        help="number COCO GT annotations from 0 as the benchmark (TEST.COCO_LEGACY_ANN_IDS)")
    parser.add_argument("--coco-matcher", choices=["vectorised", "pycocotools"], default="vectorised")
    parser.add_argument("--dict-file", help="VG-SGG-dicts JSON: predicate names and training counts "
                                            "(head/body/tail mR); default names pred01, pred02, ...")
    parser.add_argument("--per-image", action="store_true", help="also write every evaluated image's recalls")
    return parser.parse_args(argv)


def evaluate_fixture(args: argparse.Namespace) -> SGGEvaluator:
    """Run the evaluator over every image of the fixture."""
    fixture = load_fixture(args.fixture)
    num_predicates = fixture["rel_scores"].shape[1] - 1
    names = counts = None
    if args.dict_file:
        names = load_info(args.dict_file)[1][1:]
        counts = load_label_counts(args.dict_file)[1]
    evaluator = SGGEvaluator(
        mode=args.mode or fixture_mode(args.fixture),
        num_predicates=num_predicates,
        predicate_names=names,
        iou_threshold=args.iou_threshold,
        zeroshot_triplets=fixture.get("zeroshot_triplets"),
        train_predicate_counts=counts,
        legacy_coco_ann_ids=args.legacy_coco_ann_ids,
        keep_per_image=args.per_image,
        coco_matcher=args.coco_matcher,
    )
    for index, groundtruth, prediction in iter_fixture(fixture):
        evaluator.add(groundtruth, prediction, image_id=index)
    return evaluator


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    evaluator = evaluate_fixture(args)
    evaluator.write_json(args.out)
    print("\n".join(evaluator.log_lines()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
