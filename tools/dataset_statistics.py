"""Load the datasets a config names and report what they hold.

    python tools/dataset_statistics.py --config-file configs/synthetic_vg/dataset.yaml [KEY VALUE ...]

Builds DATASETS.TRAIN / VAL / TEST through the catalog exactly as training would,
checks that the config's class counts match the dataset's dictionary, prints
images / boxes / relations per split and the predicate counts, and computes (or
loads from OUTPUT_DIR) the frequency statistics used by the relation head.
"""
import argparse
import logging
import sys
from collections import Counter
from typing import Dict, List

import numpy as np

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.data.build import build_dataset, get_dataset_statistics, statistics_cache_file
from maskrcnn_benchmark.utils.logger import setup_logger


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a YAML config")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the config")
    return parser.parse_args(argv)


def check_class_counts(config, dataset) -> None:
    """The model's class counts must match the dataset dictionary (background included)."""
    expected = {
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES": len(dataset.ind_to_classes),
        "MODEL.ROI_RELATION_HEAD.NUM_CLASSES": len(dataset.ind_to_predicates),
    }
    actual = {
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES": config.MODEL.ROI_BOX_HEAD.NUM_CLASSES,
        "MODEL.ROI_RELATION_HEAD.NUM_CLASSES": config.MODEL.ROI_RELATION_HEAD.NUM_CLASSES,
    }
    wrong = [f"{key} is {actual[key]} but the dataset has {expected[key]} (background included)"
             for key in expected if actual[key] != expected[key]]
    if wrong:
        raise ValueError("Config does not match the dataset: " + "; ".join(wrong))


def split_summary(dataset) -> Dict[str, object]:
    predicates = Counter()
    for rels in dataset.relationships:
        predicates.update(int(p) for p in rels[:, 2])
    return {
        "images": len(dataset),
        "boxes": int(sum(len(b) for b in dataset.gt_boxes)),
        "relations": int(sum(len(r) for r in dataset.relationships)),
        "predicates": {dataset.ind_to_predicates[p]: n for p, n in predicates.most_common()},
    }


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    logger = setup_logger("maskrcnn_benchmark")
    logging.getLogger("maskrcnn_benchmark.data").setLevel(logging.INFO)

    for mode, names in (("train", cfg.DATASETS.TRAIN), ("val", cfg.DATASETS.VAL), ("test", cfg.DATASETS.TEST)):
        for name, dataset in zip(names, build_dataset(cfg, names)):
            check_class_counts(cfg, dataset)
            summary = split_summary(dataset)
            logger.info("%-24s %5d images, %6d boxes, %6d relations", name, summary["images"],
                        summary["boxes"], summary["relations"])
            if mode == "train":
                logger.info("Predicate counts in %s (after the benchmark's filters):", name)
                for predicate, count in summary["predicates"].items():
                    logger.info("    %-16s %6d", predicate, count)

    stats = get_dataset_statistics(cfg)
    fg = np.asarray(stats["fg_matrix"])[:, :, 1:]
    logger.info("Frequency statistics (%s): %d relations over %d (subject, object) class pairs, "
                "%d predicates seen; cached in %s", cfg.DATASETS.TRAIN[0], int(fg.sum()),
                int((fg.sum(2) > 0).sum()), int((fg.sum((0, 1)) > 0).sum()), statistics_cache_file(cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
