"""Run under torchrun by test_relation_training: a few relation training iterations, then each
rank saves its own copy of the relation head's parameters for comparison (buffers such as
BatchNorm running statistics are per rank, as with the benchmark's broadcast_buffers=False)."""
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
    state = {k: v.detach().cpu() for k, v in model.named_parameters() if k.startswith("roi_heads.relation")}
    torch.save(state, os.path.join(ctx.cfg.OUTPUT_DIR, f"rank{get_rank()}.pth"))


if __name__ == "__main__":
    main()
