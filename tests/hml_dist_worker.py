"""Run under torchrun by test_hml_stages: HML's stages with two ranks, then each rank saves its
importance state (Fisher, Omega, parents and scalars) and its relation-head parameters, so the
test can check that the ranks never diverged."""
import os
import sys

import torch

import hml_patch  # noqa: F401  (the HML config group and predictor)
from hml_patch.stages import train_hml
from maskrcnn_benchmark.engine.defaults import setup
from maskrcnn_benchmark.utils.comm import get_rank


def main() -> None:
    torch.set_num_threads(1)
    config_file, opts = sys.argv[1], sys.argv[2:]
    ctx = setup(config_file, opts)
    result = train_hml(ctx.cfg, ctx)
    out, rank = ctx.cfg.OUTPUT_DIR, get_rank()
    torch.save(result.importance.state_dict(), os.path.join(out, f"importance_rank{rank}.pth"))
    params = {k: v.detach().clone() for k, v in result.model.named_parameters() if k.startswith("roi_heads.relation")}
    torch.save(params, os.path.join(out, f"relation_rank{rank}.pth"))


if __name__ == "__main__":
    main()
