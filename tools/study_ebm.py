"""EBM against plain cross-entropy on the synthetic VG150-format dataset, PredCls (issue 14's measurements).

    python tools/study_ebm.py --data-dir DIR [--out output/study_ebm] [--iters 300]
        [--predictors MotifPredictor VCTreePredictor] [--seeds 0] [KEY VALUE ...]

Each run is ``tools/relation_train_net.py`` with the overrides of the main job's CE run
(``tools/demo_hml.py``: frozen random detector, ITERS iterations, STEPS at 5/6, no validation, both
test sets, the generator's predicate tree for the hierarchy metrics), one process at a time with one
thread; "EBM" adds ``MODEL.ROI_RELATION_HEAD.FRAMEWORKS ['EBM']`` (every EBM.* key at its default).
Prints one row per run (annotated and truth R/mR/Mean@50, HR@50, seconds, the final energy gap
E- - E+ of the run's ``ebm_energies.json``) and ends with one JSON line. Finished runs are not trained again.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from maskrcnn_benchmark.engine.study import StudyRun, run_study, summarize_metrics  # noqa: E402

logger = logging.getLogger("study_ebm")

CONFIG = os.path.join(REPO, "configs", "synthetic_vg", "relation_R_18_FPN_predcls.yaml")
HIERARCHY_TREE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
TEST_DATASET, TRUTH_DATASET = "synthetic_vg_test", "synthetic_vg_test_truth"
METHODS = {"CE": [], "EBM": ["MODEL.ROI_RELATION_HEAD.FRAMEWORKS", "['EBM']"]}
COLUMNS = (("R@50", "annotated"), ("mR@50", "annotated"), ("Mean@50", "annotated"), ("R@50", "truth"),
           ("mR@50", "truth"), ("Mean@50", "truth"), ("HR@50", "annotated"))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="DATASETS.DATA_DIR holding synthetic_vg/")
    parser.add_argument("--out", default=os.path.join(REPO, "output", "study_ebm"))
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--predictors", nargs="+", default=["MotifPredictor", "VCTreePredictor"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run")
    return parser.parse_args(argv)


def command(args: argparse.Namespace, predictor: str, method: str, seed: int, out_dir: str) -> List[str]:
    """The main job's CE command (tools/demo_hml.py) with this predictor, seed and method."""
    return [sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file", CONFIG,
            "DATASETS.DATA_DIR", args.data_dir, "OUTPUT_DIR", out_dir, "MODEL.PRETRAINED_DETECTOR_CKPT", "",
            "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor, "SOLVER.MAX_ITER", str(args.iters),
            "SOLVER.STEPS", f"({args.iters * 5 // 6},)", "SOLVER.CHECKPOINT_PERIOD", str(args.iters),
            "SOLVER.TO_VAL", "False", "SEED", str(seed), "DATASETS.TEST", f"('{TEST_DATASET}', '{TRUTH_DATASET}')",
            "TEST.RELATION.PREDICATE_TREE", HIERARCHY_TREE, *METHODS[method], *args.opts]


def study_runs(args: argparse.Namespace) -> List[StudyRun]:
    runs = []
    for seed in args.seeds:
        for predictor in args.predictors:
            for method in args.methods:
                out_dir = os.path.join(args.out, f"{predictor}_{method}_seed{seed}")
                runs.append(StudyRun(key=(predictor, method, str(seed)), out_dir=out_dir,
                                     command=tuple(command(args, predictor, method, seed, out_dir)),
                                     datasets=(TEST_DATASET, TRUTH_DATASET)))
    return runs


def energy_gap(out_dir: str) -> Optional[Dict[str, float]]:
    """First and last logged E- - E+ of an EBM run (None for CE)."""
    path = os.path.join(out_dir, "ebm_energies.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        rows = json.load(f)
    return {"first_gap": rows[0]["gap"], "last_gap": rows[-1]["gap"], "last_e_pos": rows[-1]["e_pos"],
            "last_e_neg": rows[-1]["e_neg"]}


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    args.data_dir, args.out = os.path.abspath(args.data_dir), os.path.abspath(args.out)
    runs = study_runs(args)
    run_study(runs, 1, logger)
    with open(HIERARCHY_TREE) as f:
        parents = json.load(f)["parents"]
    entries = {}
    for run in runs:
        annotated, truth = run.metrics(TEST_DATASET), run.metrics(TRUTH_DATASET)
        names = annotated["per_predicate"]["names"]
        fine = [n for n in names if n in parents]
        coarse = [n for n in names if n not in parents]
        entries["/".join(run.key)] = {"annotated": summarize_metrics(annotated, coarse, fine),
                                      "truth": summarize_metrics(truth, coarse, fine),
                                      "run_seconds": run.seconds(), "energy": energy_gap(run.out_dir)}
    header = f"{'run':<34}" + "".join(f"{(split[0] + ' ' if split == 'truth' else '') + key:>11}"
                                      for key, split in COLUMNS) + f"{'seconds':>10}{'gap':>9}"
    print(f"PredCls, {args.iters} iterations per run; annotated = {TEST_DATASET}, t = {TRUTH_DATASET}; values in %")
    print(header)
    for name, entry in entries.items():
        gap = entry["energy"]["last_gap"] if entry["energy"] else float("nan")
        seconds = entry["run_seconds"] if entry["run_seconds"] is not None else float("nan")
        print(f"{name:<34}" + "".join(f"{100 * entry[split][key]:>11.2f}" for key, split in COLUMNS)
              + f"{seconds:>10.0f}{gap:>9.3f}")
    print(json.dumps(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
