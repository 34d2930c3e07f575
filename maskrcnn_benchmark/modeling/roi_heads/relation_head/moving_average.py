"""The "untreated" moving averages that causal effect analysis subtracts at test time (CAUSAL.md 1.4).

``holder <- (1 - r) holder + r mean(inputs)`` with r = 0.0005, once per training forward. Under
torch.distributed the mean is over the rows of every rank (each rank calls the update in the
same order), so all ranks and the checkpoint hold the same averages; the benchmark kept each
rank's own and saved rank 0's.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from maskrcnn_benchmark.utils.comm import get_world_size

MOVING_AVERAGE_RATIO = 0.0005


@torch.no_grad()
def update_moving_average(holder: torch.Tensor, inputs: torch.Tensor) -> None:
    """Move ``holder`` ([D]) towards the row mean of ``inputs`` ([R, D]) in place."""
    inputs = inputs.detach()
    if get_world_size() == 1:
        if inputs.shape[0]:
            holder.mul_(1.0 - MOVING_AVERAGE_RATIO).add_(inputs.mean(0), alpha=MOVING_AVERAGE_RATIO)
        return
    sums = torch.cat([inputs.float().sum(0), inputs.new_full((1,), inputs.shape[0], dtype=torch.float32)])
    dist.all_reduce(sums)
    if sums[-1] > 0:
        holder.mul_(1.0 - MOVING_AVERAGE_RATIO).add_((sums[:-1] / sums[-1]).to(holder.dtype),
                                                     alpha=MOVING_AVERAGE_RATIO)


def untreated_rows(average: torch.Tensor, rows: int) -> torch.Tensor:
    """``[rows, D]``: the average ``[D]`` in every row, the input of a counterfactual pass."""
    return average.view(1, -1).expand(rows, -1)


def require_averages(module: torch.nn.Module) -> None:
    """A counterfactual pass needs the moving averages, which only EFFECT_ANALYSIS registers."""
    if not module.effect_analysis:
        raise ValueError(f"{type(module).__name__} has no untreated averages: build it with "
                         "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS True")
