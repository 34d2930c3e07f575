"""The CE7454 imbalance tricks added one at a time, over several seeds: the test mR@3 table.

    python tools/psg_cls_tricks.py --config-file configs/psg/cls_R18_synthetic.yaml --seeds 0 1 2 \
        --out /tmp/psg_cls_tricks DATASETS.DATA_DIR /tmp/synthetic_psg

Rows: plain BCE; + class-weighted BCE (PSG_CLS.LOW_FREQ_WEIGHT 1.2); + the balanced sampler;
+ the rare-class probability multiplier 1.1 (the report's constants; class lists from
PSG_CLS.CLASS_LISTS). Each run trains as tools/psg_cls_train.py (model chosen by val mR@3),
predicts the test split as tools/psg_cls_predict.py and is scored against --gt (default
DATA_DIR/psg/psg_cls_gt.txt, the synthetic set's hidden test labels). Prints a Markdown
table of the mean and range over seeds and writes OUT/tricks.json.
"""
import argparse
import json
import logging
import os
from typing import Dict, List

import numpy as np
import torch

from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.psg_cls.class_lists import class_lists, class_vector, image_counts
from maskrcnn_benchmark.psg_cls.data import PSGClsDataset
from maskrcnn_benchmark.psg_cls.engine import ClsSettings, predict_probabilities, top_k, train_classifier
from maskrcnn_benchmark.psg_cls.grader import RESULT_FILE, score_files, write_id_lines
from maskrcnn_benchmark.psg_cls.model import build_classifier
from maskrcnn_benchmark.data.datasets.psg_vocabulary import PREDICATES

VARIANTS = (
    ("BCE", {}),
    ("+ class weights 1.2", {"PSG_CLS.LOW_FREQ_WEIGHT": 1.2}),
    ("+ balanced sampler", {"PSG_CLS.LOW_FREQ_WEIGHT": 1.2, "PSG_CLS.BALANCED_SAMPLER": True}),
    ("+ rare multiplier 1.1", {"PSG_CLS.LOW_FREQ_WEIGHT": 1.2, "PSG_CLS.BALANCED_SAMPLER": True,
                               "PSG_CLS.RARE_MULTIPLIER": 1.1}),
)


def run_once(config_file: str, opts: List[str], out_dir: str, gt_file: str) -> Dict[str, float]:
    """Train, predict the test split and score it; returns val and test mR@3."""
    cfg = load_config(config_file, opts + ["OUTPUT_DIR", out_dir])
    torch.manual_seed(cfg.SEED)
    settings = ClsSettings.from_config(cfg)
    best = train_classifier(settings, torch.device("cpu"), distributed=False)
    model = build_classifier(settings.arch, len(PREDICATES))
    model.load_state_dict(best["state_dict"])
    test = PSGClsDataset(settings.data_file, settings.img_dir, "test", settings.input_size, train=False)
    train_labels = PSGClsDataset(settings.data_file, settings.img_dir, "train", settings.input_size, False).labels
    multiplier = class_vector(class_lists(settings.class_lists, image_counts(train_labels)).multiplied,
                              settings.rare_multiplier)
    result_file = os.path.join(out_dir, "test", RESULT_FILE)
    probabilities = predict_probabilities(model, test, settings.batch_size, torch.device("cpu"))
    write_id_lines(result_file, top_k(probabilities, multiplier).tolist())
    return {"val": best["best_val"], "test": score_files(result_file, gt_file).score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--gt", default="", metavar="FILE", help="test GT lines (default DATA_DIR/psg/psg_cls_gt.txt)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    data_dir = load_config(args.config_file, args.opts).DATASETS.DATA_DIR
    gt_file = args.gt or os.path.join(data_dir, "psg", "psg_cls_gt.txt")
    rows = {}
    for name, overrides in VARIANTS:
        runs = []
        for seed in args.seeds:
            opts = args.opts + ["SEED", str(seed)] + [str(x) for pair in overrides.items() for x in pair]
            runs.append(run_once(args.config_file, opts, os.path.join(args.out, f"{len(rows)}_seed{seed}"), gt_file))
        rows[name] = runs
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tricks.json"), "w") as f:
        json.dump({"seeds": args.seeds, "rows": rows}, f, indent=1)
    print(f"| variant | val mR@3 (mean [min, max]) | test mR@3 (mean [min, max]) |  ({len(args.seeds)} seeds)")
    print("|---|---|---|")
    for name, runs in rows.items():
        cells = []
        for split in ("val", "test"):
            values = 100 * np.array([run[split] for run in runs])
            cells.append(f"{values.mean():.2f} [{values.min():.2f}, {values.max():.2f}]")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
