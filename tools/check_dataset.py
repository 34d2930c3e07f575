"""Check the VG150-format files of the datasets a config names, before a run, and list every problem.

    python tools/check_dataset.py --config-file CONFIG [--json] [--quick] [KEY VALUE ...]

Checks DATASETS.TRAIN / VAL / TEST (each set of files once) resolved through the catalog
as training resolves them, so DATASETS.* overrides apply: missing or truncated files,
missing h5 datasets, wrong dtypes or shapes, headers claiming more data than stored,
img_to_first/last ranges that overlap or run past the arrays, boxes with w or h <= 0,
outside the image or NaN/Inf, relations whose boxes are not their image's, labels outside
the dictionary, dictionary tables that disagree, duplicate image ids, and images listed
but missing or undecodable. ``--quick`` runs only what the training tools check at
start-up. One line per problem (file: key: image id: index: message), or with ``--json``
one JSON object ``{"problems": [...], "count": N}``. Exit status 0 when clean, 1 otherwise.
"""
import argparse
import json
import logging
import sys
from typing import List

import hml_patch  # noqa: F401  (registers the HML config group, so HML configs load)
from maskrcnn_benchmark.data.dataset_check import check_config_datasets
from maskrcnn_benchmark.engine.defaults import load_config

logger = logging.getLogger("check_dataset")


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a YAML config")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    parser.add_argument("--quick", action="store_true", help="only the start-up checks (no values, no images)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the config")
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.config_file, args.opts)
    problems = check_config_datasets(cfg, deep=not args.quick)
    if args.json:
        print(json.dumps({"problems": [p.as_dict() for p in problems], "count": len(problems)}, indent=1))
    else:
        for problem in problems:
            print(problem)
    logger.info("%d problem(s) found", len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
