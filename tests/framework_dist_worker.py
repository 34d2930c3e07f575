"""Run under torchrun by test_hierarchical_loss: a few iterations through the training frameworks the
config selects, then each rank saves its relation head's parameters (framework modules included)."""
import os
import sys

import torch

import hml_patch  # noqa: F401  (registers HML and its config group)
import training_frameworks  # noqa: F401  (registers the other frameworks and their config groups)
from maskrcnn_benchmark.engine.defaults import setup
from maskrcnn_benchmark.engine.framework import train_with_frameworks
from maskrcnn_benchmark.utils.comm import get_rank


def main() -> None:
    torch.set_num_threads(1)
    config_file, opts = sys.argv[1], sys.argv[2:]
    ctx = setup(config_file, opts)
    model = train_with_frameworks(ctx.cfg, ctx)
    state = {k: v.detach().cpu() for k, v in model.named_parameters() if k.startswith("roi_heads.relation")}
    torch.save(state, os.path.join(ctx.cfg.OUTPUT_DIR, f"rank{get_rank()}.pth"))


if __name__ == "__main__":
    main()
