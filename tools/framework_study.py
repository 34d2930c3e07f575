"""Training frameworks side by side on the synthetic world: methods x predictors x modes x generator seeds.

    python tools/framework_study.py --methods ce cb_ce hml_paper --seeds 0 1 2 \
        [--predictors MotifPredictor] [--modes predcls] [--iters 300] [--parallel 2] \
        [--data-root datasets/study] [--out output/framework_study] [KEY VALUE ...]

Every run is ``tools/relation_train_net.py`` on the synthetic set of its seed
(``DATA_ROOT/seed<S>/synthetic_vg``, generated when absent; the default world, 2,000
images), with the main job's budget (``--iters`` iterations on a frozen random
R-18-FPN; HML's stages split them 1:2), tested on the annotated and the truth test split
with the hierarchy metrics of the generator's tree. Its folder is
``OUT/seed<S>/<mode>/<predictor>/<method>``; a finished run is not trained again, so an
interrupted study continues where it stopped. Writes ``OUT/table.md`` (mean (min-max)
over seeds of annotated R/mR/Mean@50, truth R/mR/Mean@50, HR@50, the truth recall of
the coarse and fine predicates, and seconds per run), a per-predicate recall plot of the
three best methods by truth Mean@50 (``OUT/per_predicate_recall_<mode>_<predictor>.png``,
first seed), and prints the table and one JSON line. ``--list`` prints the methods.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hml_patch.plots import plot_per_predicate_recall  # noqa: E402
from maskrcnn_benchmark.data.datasets.synthetic_vg import SyntheticWorldConfig, make_synthetic_vg  # noqa: E402
from maskrcnn_benchmark.engine.study import (StudyRun, aggregate, format_cell, grouped, markdown_table,  # noqa: E402
                                             run_study, summarize_metrics, write_text)

logger = logging.getLogger("framework_study")

CONFIG_DIR = os.path.join(REPO, "configs", "synthetic_vg")
TREE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
TEST_DATASET, TRUTH_DATASET = "synthetic_vg_test", "synthetic_vg_test_truth"
RANKING = ("truth", "Mean@50")  # how "best" is read for the plot


def _hml(mode: str) -> Callable[[int], List[str]]:
    def overrides(iters: int) -> List[str]:
        tree = ["HML.TREE", TREE] if mode == "paper" else []
        return ["MODEL.ROI_RELATION_HEAD.HML", "True", "HML.MODE", mode, *tree,
                "HML.STAGE_MAX_ITER", f"[{iters // 3}, {iters - iters // 3}]"]
    return overrides


def _frameworks(*names: str, extra: Sequence[str] = ()) -> Callable[[int], List[str]]:
    return lambda iters: ["MODEL.ROI_RELATION_HEAD.FRAMEWORKS", str(list(names)), *extra]


def _combined(*parts: Callable[[int], List[str]]) -> Callable[[int], List[str]]:
    return lambda iters: [item for part in parts for item in part(iters)]


# method -> (label, config file under configs/synthetic_vg/ with {mode}, overrides given the iterations).
# LS-KD's synchronous warm-up keeps LSKD.md's proportion (2k of 50k iterations); everything
# else is the framework's default.
METHODS: Dict[str, Tuple[str, str, Callable[[int], List[str]]]] = {
    "ce": ("CE", "relation_R_18_FPN_{mode}.yaml", lambda iters: []),
    "cb_ce": ("CB-CE", "relation_R_18_FPN_{mode}.yaml", _frameworks("ClassBalancedCE")),
    "inverse_frequency_ce": ("IF-CE", "relation_R_18_FPN_{mode}.yaml", _frameworks("InverseFrequencyCE")),
    "causal_tde": ("Causal-MOTIFS TDE", "relation_R_18_FPN_causal_{mode}.yaml",
                   lambda iters: ["MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE", "TDE"]),
    "lskd_iterative": ("LS-KD iterative", "relation_R_18_FPN_{mode}.yaml",
                       _frameworks("LSKD", extra=["LSKD.STRATEGY", "iterative"])),
    "lskd_synchronous": ("LS-KD synchronous", "relation_R_18_FPN_{mode}.yaml",
                         lambda iters: _frameworks("LSKD", extra=["LSKD.STRATEGY", "synchronous",
                                                                  "LSKD.WARMUP_ITERS", str(iters // 25)])(iters)),
    "hierarchical": ("Hierarchical loss", "relation_R_18_FPN_{mode}.yaml",
                     _frameworks("HierarchicalLoss", extra=["HIER.TREE", TREE])),
    "ebm": ("EBM", "relation_R_18_FPN_{mode}.yaml", _frameworks("EBM")),
    "hml_paper": ("HML paper", "relation_R_18_FPN_{mode}.yaml", _hml("paper")),
    "hml_official": ("HML official", "relation_R_18_FPN_{mode}.yaml", _hml("official")),
    "hml_paper+hierarchical": ("HML paper + hierarchical", "relation_R_18_FPN_{mode}.yaml",
                               _combined(_hml("paper"), _frameworks("HierarchicalLoss", extra=["HIER.TREE", TREE]))),
}
# (header, split, summary key); seconds are added separately.
COLUMNS = (("R@50", "annotated", "R@50"), ("mR@50", "annotated", "mR@50"), ("Mean@50", "annotated", "Mean@50"),
           ("truth R@50", "truth", "R@50"), ("truth mR@50", "truth", "mR@50"), ("truth Mean@50", "truth", "Mean@50"),
           ("HR@50", "annotated", "HR@50"), ("coarse truth R@50", "truth", "coarse_mR@50"),
           ("fine truth R@50", "truth", "fine_mR@50"))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["ce", "cb_ce", "hml_paper"], help="see --list")
    parser.add_argument("--predictors", nargs="+", default=["MotifPredictor"])
    parser.add_argument("--modes", nargs="+", default=["predcls"], choices=["predcls", "sgcls", "sgdet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="generator seeds (one dataset each)")
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--iters", type=int, default=300, help="training iterations of every run (default 300)")
    parser.add_argument("--parallel", type=int, default=2, help="runs trained at once, one thread each")
    parser.add_argument("--data-root", default=os.path.join(REPO, "datasets", "study"))
    parser.add_argument("--out", default=os.path.join(REPO, "output", "framework_study"))
    parser.add_argument("--list", action="store_true", help="print the methods and exit")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; known: {', '.join(METHODS)}")
    return args


def ensure_dataset(data_dir: str, num_images: int, seed: int) -> None:
    if os.path.isfile(os.path.join(data_dir, "synthetic_vg", "VG-SGG-with-attri.h5")):
        return
    logger.info("Generating %d synthetic images (seed %d) into %s", num_images, seed, data_dir)
    make_synthetic_vg(os.path.join(data_dir, "synthetic_vg"), num_images, seed, SyntheticWorldConfig())


def study_runs(args: argparse.Namespace) -> List[StudyRun]:
    runs = []
    for seed in args.seeds:
        data_dir = os.path.join(args.data_root, f"seed{seed}")
        for mode in args.modes:
            for predictor in args.predictors:
                for method in args.methods:
                    _, config, overrides = METHODS[method]
                    config_file = os.path.join(CONFIG_DIR, config.format(mode=mode))
                    if not os.path.isfile(config_file):
                        raise FileNotFoundError(f"method {method!r} has no config for {mode}: {config_file}")
                    out = os.path.join(args.out, f"seed{seed}", mode, predictor, method)
                    predictor_opt = [] if method == "causal_tde" else ["MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor]
                    command = (sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"),
                               "--config-file", config_file,
                               "DATASETS.DATA_DIR", data_dir, "OUTPUT_DIR", out, "MODEL.PRETRAINED_DETECTOR_CKPT", "",
                               *predictor_opt, "SOLVER.MAX_ITER", str(args.iters),
                               "SOLVER.STEPS", f"({args.iters * 5 // 6},)", "SOLVER.CHECKPOINT_PERIOD", str(args.iters),
                               "SOLVER.TO_VAL", "False", "SEED", "0",
                               "DATASETS.TEST", f"('{TEST_DATASET}', '{TRUTH_DATASET}')",
                               "TEST.RELATION.PREDICATE_TREE", TREE, *overrides(args.iters), *args.opts)
                    runs.append(StudyRun((f"seed{seed}", mode, predictor, method), out, command,
                                         (TEST_DATASET, TRUTH_DATASET)))
    return runs


def summaries(runs: Sequence[StudyRun]) -> Dict[Tuple[str, ...], Dict[str, Dict[str, float]]]:
    """Per run key: the annotated and truth summaries (coarse/fine from the generator's tree)."""
    with open(TREE) as f:
        parents = json.load(f)["parents"]
    out = {}
    for run in runs:
        annotated, truth = run.metrics(TEST_DATASET), run.metrics(TRUTH_DATASET)
        names = annotated["per_predicate"]["names"]
        fine = [n for n in names if n in parents]
        coarse = [n for n in names if n not in parents]
        out[run.key] = {"annotated": summarize_metrics(annotated, coarse, fine),
                        "truth": summarize_metrics(truth, coarse, fine)}
    return out


def table(runs: Sequence[StudyRun], values: Dict) -> Tuple[str, Dict]:
    """The Markdown table over seeds and its numbers (mode, predictor, method -> column -> summary)."""
    rows, numbers = [], {}
    for key, members in grouped(runs, 0).items():
        mode, predictor, method = key
        cells = {header: aggregate([values[r.key][split][name] for r in members]) for header, split, name in COLUMNS}
        seconds = [r.seconds() for r in members if r.seconds() is not None]
        numbers[key] = dict(cells, seconds=aggregate(seconds) if seconds else None)
        rows.append([METHODS[method][0], mode, predictor, *(format_cell(c) for c in cells.values()),
                     format_cell(numbers[key]["seconds"], scale=1.0, digits=0) if seconds else "-",
                     str(len(members))])
    header = ["method", "mode", "predictor", *(c[0] for c in COLUMNS), "seconds", "seeds"]
    return markdown_table(header, rows), numbers


def plot_best(args: argparse.Namespace, runs: Sequence[StudyRun], numbers: Dict) -> List[str]:
    """Per mode and predictor: per-predicate annotated R@100 of the three best methods (first seed)."""
    paths = []
    first = f"seed{args.seeds[0]}"
    with open(os.path.join(args.data_root, first, "synthetic_vg", "synthetic_vg_info.json")) as f:
        counts = json.load(f)["predicate_counts_by_split"]["train"]
    for mode in args.modes:
        for predictor in args.predictors:
            ranked = sorted(args.methods, key=lambda m: -numbers[(mode, predictor, m)]["truth Mean@50"]["mean"])
            best = {METHODS[m][0]: next(r for r in runs if r.key == (first, mode, predictor, m)).metrics(TEST_DATASET)
                    for m in ranked[:3]}
            paths.append(plot_per_predicate_recall(best, counts, os.path.join(
                args.out, f"per_predicate_recall_{mode}_{predictor}.png")))
    return paths


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    if args.list:
        for name, (label, config, _) in METHODS.items():
            print(f"{name:<24} {label} ({config})")
        return 0
    args.data_root, args.out = os.path.abspath(args.data_root), os.path.abspath(args.out)
    for seed in args.seeds:
        ensure_dataset(os.path.join(args.data_root, f"seed{seed}"), args.num_images, seed)
    runs = study_runs(args)
    run_study(runs, args.parallel, logger)
    text, numbers = table(runs, summaries(runs))
    write_text(os.path.join(args.out, "table.md"), text + "\n")
    print(f"{args.iters} iterations per run, frozen random R-18-FPN, synthetic world (generator seeds "
          f"{' '.join(map(str, args.seeds))}); mean (min-max) over seeds, values in %\n{text}")
    plots = plot_best(args, runs, numbers)
    logger.info("Wrote %s and %s", os.path.join(args.out, "table.md"), ", ".join(plots))
    best = {f"{mode}/{predictor}": max(args.methods, key=lambda m: numbers[(mode, predictor, m)]["truth Mean@50"]["mean"])
            for mode in args.modes for predictor in args.predictors}
    print(json.dumps({"runs": len(runs), "best_truth_mean@50": best,
                      "table": {"/".join(k): v for k, v in numbers.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
