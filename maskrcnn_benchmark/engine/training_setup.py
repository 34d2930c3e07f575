"""What the detector and relation training tools set up the same way around ``do_train``."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from maskrcnn_benchmark.solver import make_lr_scheduler, make_optimizer
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer

from .defaults import RunContext
from .trainer import amp_settings


@dataclass
class Optimization:
    """Optimizer, schedule and mixed-precision settings of one training run."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp_dtype: Optional[torch.dtype]
    grad_scaler: Optional[torch.amp.GradScaler]


def build_optimization(cfg, model: torch.nn.Module, ctx: RunContext,
                       slow_heads: Optional[Sequence[str]] = None) -> Optimization:
    """SGD with the benchmark's lr x IMS_PER_BATCH scaling, the configured schedule, and DTYPE autocast."""
    optimizer = make_optimizer(cfg, model, ctx.logger, slow_heads=slow_heads, slow_ratio=10.0,
                               rl_factor=float(cfg.SOLVER.IMS_PER_BATCH))
    scheduler = make_lr_scheduler(cfg, optimizer, ctx.logger)
    amp_dtype, grad_scaler = amp_settings(cfg.DTYPE, ctx.device)
    return Optimization(optimizer, scheduler, amp_dtype, grad_scaler)


def wrap_distributed(model: torch.nn.Module, ctx: RunContext, find_unused_parameters: bool) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` under torchrun, ``model`` itself otherwise."""
    if not ctx.distributed:
        return model
    device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, output_device=device_ids[0] if device_ids else None,
                                   broadcast_buffers=False, find_unused_parameters=find_unused_parameters)


def make_checkpointer(cfg, model: torch.nn.Module, optimization: Optimization, save_dir: str,
                      ctx: RunContext) -> DetectronCheckpointer:
    """Checkpointer that saves the schedule's state too, so a resumed run continues it exactly."""
    return DetectronCheckpointer(cfg, model, optimization.optimizer, optimization.scheduler, save_dir,
                                 logger=ctx.logger, custom_scheduler=False)


def rng_state() -> Dict[str, Any]:
    """The random generators' states, saved in checkpoints so a resumed run draws the same samples
    (tensors and plain numbers only, so the checkpoint stays loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Optional[Dict[str, Any]]) -> None:
    """Restore what :func:`rng_state` saved (nothing when ``state`` is None)."""
    if not state:
        return
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state((saved["name"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"],
                         saved["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
