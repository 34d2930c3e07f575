"""Train the CE7454 PSG relation classifier (ResNet + 56 sigmoid outputs); keep the best val mR@3 model.

    python tools/psg_cls_train.py --config-file configs/psg/cls_R18_synthetic.yaml DATASETS.DATA_DIR DIR [KEY VALUE ...]
    torchrun --nproc_per_node=N tools/psg_cls_train.py --config-file ... [KEY VALUE ...]

Writes OUTPUT_DIR/model_best.pth and OUTPUT_DIR/history.json (val mR@3 per epoch, the class
lists used). The tricks are PSG_CLS.LOW_FREQ_WEIGHT, PSG_CLS.BALANCED_SAMPLER and
PSG_CLS.RARE_MULTIPLIER; PSG_CLS.CLASS_LISTS says where their class lists come from.
"""
import json
import os

import torch

from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.psg_cls.engine import ClsSettings, train_classifier
from maskrcnn_benchmark.utils.comm import is_main_process

CHECKPOINT = "model_best.pth"
HISTORY = "history.json"


def main() -> None:
    args = default_argument_parser("CE7454 PSG relation classification: training").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    best = train_classifier(ClsSettings.from_config(ctx.cfg), ctx.device, ctx.distributed)
    if is_main_process():
        torch.save(best["state_dict"], os.path.join(ctx.cfg.OUTPUT_DIR, CHECKPOINT))
        with open(os.path.join(ctx.cfg.OUTPUT_DIR, HISTORY), "w") as f:
            json.dump({key: best[key] for key in ("best_val", "history", "lists")}, f, indent=1)
        ctx.logger.info("best val mR@3 %.4f; model in %s", best["best_val"],
                        os.path.join(ctx.cfg.OUTPUT_DIR, CHECKPOINT))


if __name__ == "__main__":
    main()
