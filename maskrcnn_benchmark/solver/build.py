"""Optimizer and learning-rate schedule from SOLVER, with the benchmark's parameter groups."""
from __future__ import annotations

import logging
from typing import Optional, Sequence, Union

import torch

from .lr_scheduler import WarmupMultiStepLR, WarmupReduceLROnPlateau

SCHEDULE_TYPES = ("WarmupMultiStepLR", "WarmupReduceLROnPlateau")


def make_optimizer(cfg, model: torch.nn.Module, logger: Optional[logging.Logger] = None,
                   slow_heads: Optional[Sequence[str]] = None, slow_ratio: float = 5.0,
                   rl_factor: float = 1.0) -> torch.optim.SGD:
    """SGD with momentum and one parameter group per trainable tensor, as the benchmark builds it.

    A tensor's lr is ``BASE_LR`` (``BASE_LR * BIAS_LR_FACTOR`` and weight decay
    ``WEIGHT_DECAY_BIAS`` when "bias" occurs in its name), divided by
    ``slow_ratio`` when its name contains one of ``slow_heads``, times
    ``rl_factor`` (the tools pass the global batch size, so the effective lr is
    BASE_LR x IMS_PER_BATCH). Frozen tensors (requires_grad False) are left out.
    """
    logger = logger or logging.getLogger(__name__)
    solver = cfg.SOLVER
    groups = []
    num_slow = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr, weight_decay = solver.BASE_LR, solver.WEIGHT_DECAY
        if "bias" in name:
            lr, weight_decay = solver.BASE_LR * solver.BIAS_LR_FACTOR, solver.WEIGHT_DECAY_BIAS
        if slow_heads and any(head in name for head in slow_heads):
            lr /= slow_ratio
            num_slow += 1
        groups.append({"params": [param], "lr": lr * rl_factor, "weight_decay": weight_decay})
    if not groups:
        raise ValueError("The model has no trainable parameters (all have requires_grad False)")
    logger.info("Optimizer: SGD over %d trainable tensors, lr = %g x %g (bias x %g), %d slow-head tensors (lr / %g)",
                len(groups), solver.BASE_LR, rl_factor, solver.BIAS_LR_FACTOR, num_slow, slow_ratio)
    return torch.optim.SGD(groups, lr=solver.BASE_LR, momentum=solver.MOMENTUM)


def make_lr_scheduler(cfg, optimizer: torch.optim.Optimizer, logger: Optional[logging.Logger] = None
                      ) -> Union[WarmupMultiStepLR, WarmupReduceLROnPlateau]:
    """The schedule named by SOLVER.SCHEDULE.TYPE."""
    solver = cfg.SOLVER
    schedule_type = solver.SCHEDULE.TYPE
    if schedule_type == "WarmupMultiStepLR":
        return WarmupMultiStepLR(optimizer, solver.STEPS, solver.GAMMA, warmup_factor=solver.WARMUP_FACTOR,
                                 warmup_iters=solver.WARMUP_ITERS, warmup_method=solver.WARMUP_METHOD)
    if schedule_type == "WarmupReduceLROnPlateau":
        return WarmupReduceLROnPlateau(optimizer, solver.SCHEDULE.FACTOR, warmup_factor=solver.WARMUP_FACTOR,
                                       warmup_iters=solver.WARMUP_ITERS, warmup_method=solver.WARMUP_METHOD,
                                       patience=solver.SCHEDULE.PATIENCE, threshold=solver.SCHEDULE.THRESHOLD,
                                       cooldown=solver.SCHEDULE.COOLDOWN,
                                       max_decay_step=solver.SCHEDULE.MAX_DECAY_STEP, logger=logger)
    raise ValueError(f"SOLVER.SCHEDULE.TYPE should be one of {SCHEDULE_TYPES}, got {schedule_type!r}")
