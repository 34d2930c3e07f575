"""Run under torchrun by test_causal_training: a few Causal-MOTIFS training iterations, then each
rank saves its copy of the predictor's moving averages for comparison."""
import os
import sys

import torch

from maskrcnn_benchmark.engine.defaults import setup
from maskrcnn_benchmark.engine.relation_train import train_relation_model
from maskrcnn_benchmark.utils.comm import get_rank


def main() -> None:
    torch.set_num_threads(1)
    config_file, opts = sys.argv[1], sys.argv[2:]
    ctx = setup(config_file, opts)
    model = train_relation_model(ctx.cfg, ctx)
    averages = {k: v.detach().cpu() for k, v in model.named_buffers() if "untreated" in k or "avg_post_ctx" in k}
    torch.save(averages, os.path.join(ctx.cfg.OUTPUT_DIR, f"averages_rank{get_rank()}.pth"))


if __name__ == "__main__":
    main()
