"""HML against its baselines on the synthetic VG150-format dataset, in PredCls (the README's main job).

    python tools/demo_hml.py [--data-dir datasets] [--out output/demo_hml] [--iters 300]

Generates the dataset if it is absent, then trains four relation heads with the same
predictor and the same number of iterations on a frozen detector: plain
cross-entropy, class-balanced cross-entropy (one stage over all predicates), HML
"paper" and HML "official" (two stages each, splitting the iterations 1:2 as the
paper's 8000/16000). Each run is ``tools/relation_train_net.py`` in its own process
(two at a time, one thread each); its log and outputs are in OUT/<run>/.

Every run is tested twice: on the annotated test split (the benchmark's protocol)
and on its truth twin ``synthetic_vg_test_truth`` (same images and pairs, each
relation labelled with the predicate that generated it), both with the hierarchy
metrics of the generator's tree. Prints one table at K = 50: annotated R, mR,
Mean, truth R, mR, Mean, HR (annotated split), and the truth mean recall of the
coarse and of the fine predicates (the generator's hierarchy); draws the plots of
``tools/plot_hml.py`` and ends with one JSON line. A finished run (its metrics.json
files exist) is not trained again.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Dict, List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hml_patch.plots import load_stage_reports, plot_importance_per_layer, plot_per_predicate_recall  # noqa: E402
from maskrcnn_benchmark.engine.study import StudyRun, run_study, summarize_metrics  # noqa: E402
from maskrcnn_benchmark.data.datasets.synthetic_vg import (SyntheticWorldConfig, format_report,  # noqa: E402
                                                          make_synthetic_vg)

logger = logging.getLogger("demo_hml")

CONFIG = os.path.join(REPO, "configs", "synthetic_vg", "relation_R_18_FPN_predcls.yaml")
HIERARCHY_TREE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
TEST_DATASET = "synthetic_vg_test"
TRUTH_DATASET = "synthetic_vg_test_truth"
KS = ("20", "50", "100")
# The mode the docs recommend (README, "HML on the synthetic benchmark").
RECOMMENDED = "hml_paper"


def run_overrides(name: str, iters: int) -> List[str]:
    """The config overrides that make each of the four runs."""
    hml = ["MODEL.ROI_RELATION_HEAD.HML", "True"]
    stages = ["HML.STAGE_MAX_ITER", f"[{iters // 3}, {iters - iters // 3}]"]
    return {
        "baseline": [],
        "cb_baseline": hml + ["HML.TREE", "list:*"],
        "hml_paper": hml + ["HML.MODE", "paper", "HML.TREE", HIERARCHY_TREE] + stages,
        "hml_official": hml + ["HML.MODE", "official"] + stages,
    }[name]


RUNS = ("baseline", "cb_baseline", "hml_paper", "hml_official")
LABELS = {"baseline": "CE", "cb_baseline": "CB-CE", "hml_paper": "HML paper", "hml_official": "HML official"}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.path.join(REPO, "datasets"),
                        help="DATASETS.DATA_DIR: the dataset is its synthetic_vg/ folder (generated when absent)")
    parser.add_argument("--num-images", type=int, default=2000, help="images to generate (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--out", default=os.path.join(REPO, "output", "demo_hml"), help="output folder")
    parser.add_argument("--iters", type=int, default=300, help="training iterations of every method (default 300)")
    parser.add_argument("--predictor", default="MotifPredictor", help="relation predictor (default MotifPredictor)")
    parser.add_argument("--parallel", type=int, default=2, help="runs trained at once (default 2)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run")
    return parser.parse_args(argv)


def ensure_dataset(data_dir: str, num_images: int, seed: int) -> None:
    data_dir = os.path.join(data_dir, "synthetic_vg")
    if os.path.isfile(os.path.join(data_dir, "VG-SGG-with-attri.h5")):
        logger.info("Using the synthetic dataset in %s", data_dir)
        return
    logger.info("Generating %d synthetic images into %s", num_images, data_dir)
    print(format_report(make_synthetic_vg(data_dir, num_images, seed, SyntheticWorldConfig())))


def command(args: argparse.Namespace, name: str) -> List[str]:
    return [sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file", CONFIG,
            "DATASETS.DATA_DIR", args.data_dir, "OUTPUT_DIR", os.path.join(args.out, name),
            "MODEL.PRETRAINED_DETECTOR_CKPT", "", "MODEL.ROI_RELATION_HEAD.PREDICTOR", args.predictor,
            "SOLVER.MAX_ITER", str(args.iters), "SOLVER.STEPS", f"({args.iters * 5 // 6},)",
            "SOLVER.CHECKPOINT_PERIOD", str(args.iters), "SOLVER.TO_VAL", "False", "SEED", "0",
            "DATASETS.TEST", f"('{TEST_DATASET}', '{TRUTH_DATASET}')", "TEST.RELATION.PREDICATE_TREE", HIERARCHY_TREE,
            *run_overrides(name, args.iters), *args.opts]


def study_runs(args: argparse.Namespace) -> List[StudyRun]:
    """The four runs, in the order they are trained."""
    return [StudyRun(key=(name,), out_dir=os.path.join(args.out, name), command=tuple(command(args, name)),
                     datasets=(TEST_DATASET, TRUTH_DATASET)) for name in RUNS]


# (header, split, key) of the table's columns
COLUMNS = (("R@50", "annotated", "R@50"), ("mR@50", "annotated", "mR@50"), ("Mean@50", "annotated", "Mean@50"),
           ("truth R@50", "truth", "R@50"), ("truth mR@50", "truth", "mR@50"), ("truth Mean@50", "truth", "Mean@50"),
           ("HR@50", "annotated", "HR@50"), ("coarse truth", "truth", "coarse_mR@50"),
           ("fine truth", "truth", "fine_mR@50"))


def format_table(results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """One row per method, values in %."""
    lines = [f"{'method':<14}" + "".join(f"{header:>15}" for header, _, _ in COLUMNS)]
    for name, splits in results.items():
        lines.append(f"{LABELS[name]:<14}" + "".join(f"{100 * splits[split][key]:>15.2f}"
                                                      for _, split, key in COLUMNS))
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    start = time.perf_counter()
    args.data_dir, args.out = os.path.abspath(args.data_dir), os.path.abspath(args.out)
    ensure_dataset(args.data_dir, args.num_images, args.seed)
    runs = study_runs(args)
    run_study(runs, args.parallel, logger)

    with open(HIERARCHY_TREE) as f:
        parents = json.load(f)["parents"]
    metrics = {run.key[0]: run.metrics(TEST_DATASET) for run in runs}
    truth = {run.key[0]: run.metrics(TRUTH_DATASET) for run in runs}
    seconds = {run.key[0]: run.seconds() for run in runs}
    names = metrics[RUNS[0]]["per_predicate"]["names"]
    fine = [name for name in names if name in parents]
    coarse = [name for name in names if name not in parents]
    results = {name: {"annotated": summarize_metrics(metrics[name], coarse, fine),
                      "truth": summarize_metrics(truth[name], coarse, fine)} for name in RUNS}
    print(f"PredCls on {args.data_dir}, {args.predictor}, {args.iters} iterations per method; annotated = "
          f"{TEST_DATASET}, truth = {TRUTH_DATASET}; coarse/fine truth = mean truth R@50 of the "
          f"{len(coarse)} coarse / {len(fine)} fine predicates (the generator's hierarchy); values in %")
    print(format_table(results))

    reports = load_stage_reports(os.path.join(args.out, RECOMMENDED))
    counts = reports[0]["train_predicate_counts"]
    plots = {
        "per_predicate_recall": plot_per_predicate_recall(
            {LABELS[name]: metrics[name] for name in RUNS}, counts,
            os.path.join(args.out, "per_predicate_recall.png")),
        "importance_per_layer": plot_importance_per_layer(reports, os.path.join(args.out,
                                                                               "importance_per_layer.png")),
    }
    logger.info("Plots: %s", ", ".join(plots.values()))
    entries = {name: {**results[name]["annotated"], "truth": results[name]["truth"], "run_seconds": seconds[name]}
               for name in RUNS}
    final = {**entries, "hml": entries[RECOMMENDED], "hml_mode": RECOMMENDED,
             "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
