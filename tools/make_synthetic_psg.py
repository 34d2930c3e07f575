"""Write a synthetic dataset in the PSG file format (OpenPSG's data/ layout) and print its report.

    python tools/make_synthetic_psg.py --out /tmp/synthetic_psg --num-images 600 --seed 0 [knobs]

OUT then serves as DATASETS.DATA_DIR (catalog psg_{train,val,test}: OUT/coco, OUT/psg/psg.json)
and as the data folder of tools/psg_cls_train.py (OUT/psg/psg_cls_basic.json). Every knob of
SyntheticPSGConfig is a flag (underscores become dashes).
"""
import argparse
import dataclasses
import json
import logging
import sys
import time
from typing import List

from maskrcnn_benchmark.data.datasets.synthetic_psg import SyntheticPSGConfig, make_synthetic_psg

logger = logging.getLogger("make_synthetic_psg")


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Command line: output folder, size, seed and one flag per config knob."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--num-images", type=int, required=True, metavar="N", help="number of images (>= 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    knobs = parser.add_argument_group("world knobs")
    for knob in dataclasses.fields(SyntheticPSGConfig):
        flag = "--" + knob.name.replace("_", "-")
        help_text = f"{knob.metadata['help']} (default {knob.default})"
        if isinstance(knob.default, tuple):
            knobs.add_argument(flag, type=float, nargs="+", default=list(knob.default), help=help_text)
        else:
            knobs.add_argument(flag, type=type(knob.default), default=knob.default, help=help_text)
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    """Generate the dataset, log the time taken and print the report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    values = {knob.name: getattr(args, knob.name) for knob in dataclasses.fields(SyntheticPSGConfig)}
    values["aspect_ratios"] = tuple(values["aspect_ratios"])
    try:
        start = time.perf_counter()
        report = make_synthetic_psg(args.out, args.num_images, args.seed, SyntheticPSGConfig(**values))
    except ValueError as error:
        logger.error("%s", error)
        return 2
    logger.info("generated %d images in %.1f s", args.num_images, time.perf_counter() - start)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
