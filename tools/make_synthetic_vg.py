"""Write a synthetic dataset in the VG150 file format and print its report.

    python tools/make_synthetic_vg.py --out datasets/synthetic_vg --num-images 2000 --seed 0 [knobs]

Every knob of SyntheticWorldConfig is a flag (underscores become dashes); the
defaults below are the config's. The report is also written to
OUT/synthetic_vg_info.json. OUT/VG-SGG-with-attri-truth.h5 holds the true predicate
of every relation (catalog names synthetic_vg_{val,test}_truth);
--genuine-coarse-share 0 gives the world without genuine coarse relations.
"""
import argparse
import dataclasses
import logging
import sys
import time
from typing import List

from maskrcnn_benchmark.data.datasets.synthetic_vg import SyntheticWorldConfig, format_report, make_synthetic_vg

logger = logging.getLogger("make_synthetic_vg")


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Command line: output folder, size, seed and one flag per config knob."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--num-images", type=int, required=True, metavar="N", help="number of images (>= 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    knobs = parser.add_argument_group("world knobs")
    for knob in dataclasses.fields(SyntheticWorldConfig):
        flag = "--" + knob.name.replace("_", "-")
        help_text = f"{knob.metadata['help']} (default {knob.default})"
        if isinstance(knob.default, tuple):
            knobs.add_argument(flag, type=float, nargs="+", default=list(knob.default), metavar="FLOAT",
                               help=help_text)
        else:
            value_type = type(knob.default)
            knobs.add_argument(flag, type=value_type, default=knob.default, metavar=value_type.__name__.upper(),
                               help=help_text)
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    """Generate the dataset, log the time taken and print the report table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    values = {knob.name: getattr(args, knob.name) for knob in dataclasses.fields(SyntheticWorldConfig)}
    values["aspect_ratios"] = tuple(values["aspect_ratios"])
    try:
        config = SyntheticWorldConfig(**values)
        start = time.perf_counter()
        report = make_synthetic_vg(args.out, args.num_images, args.seed, config)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    logger.info("generated %d images in %.1f s", args.num_images, time.perf_counter() - start)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
