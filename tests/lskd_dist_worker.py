"""Run under torchrun by test_lskd: a few LS-KD iterations with each strategy in one launch (the
iterative one into OUTPUT_DIR/iterative, the synchronous one into OUTPUT_DIR/synchronous), then each
rank saves its relation head's parameters (the auxiliary head included) for comparison."""
import dataclasses
import os
import sys

import torch

import hml_patch  # noqa: F401  (registers HML and its config group)
import training_frameworks  # noqa: F401  (registers LSKD and its config group)
from maskrcnn_benchmark.engine.defaults import load_config, setup
from maskrcnn_benchmark.engine.framework import train_with_frameworks
from maskrcnn_benchmark.utils.comm import get_rank


def main() -> None:
    torch.set_num_threads(1)
    config_file, out, opts = sys.argv[1], sys.argv[2], sys.argv[3:]
    ctx = None
    for strategy in ("iterative", "synchronous"):
        run_opts = opts + ["LSKD.STRATEGY", strategy, "OUTPUT_DIR", os.path.join(out, strategy)]
        if ctx is None:
            ctx = setup(config_file, run_opts)
        else:
            ctx = dataclasses.replace(ctx, cfg=load_config(config_file, run_opts))
        model = train_with_frameworks(ctx.cfg, ctx)
        state = {k: v.detach().cpu() for k, v in model.named_parameters() if k.startswith("roi_heads.relation")}
        torch.save(state, os.path.join(out, strategy, f"rank{get_rank()}.pth"))


if __name__ == "__main__":
    main()
