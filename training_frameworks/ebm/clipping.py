"""Gradient-norm clipping of the energy model on its own, as the release's second optimiser has it.

The energy model's tensors are in the run's SGD (one parameter group per tensor, with the same
lr, momentum, weight decay and schedule as the release's separate ``energy_optimizer``); only the
clipping differs: the release clips each model's gradients to SOLVER.GRAD_NORM_CLIP separately.
After backward this hook clips the energy gradients and holds them back, so that the trainer's
clipping sees the relation head's alone, and puts them back just before the optimizer step.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch

from maskrcnn_benchmark.engine.trainer import TrainHook


class SeparateGradClip(TrainHook):
    """Clips the gradients of ``parameters()`` to global norm ``max_norm`` apart from the rest (0: no clipping)."""

    def __init__(self, parameters: Callable[[], Sequence[torch.nn.Parameter]], max_norm: float) -> None:
        self.parameters = parameters
        self.max_norm = max_norm
        self.held: List[Optional[torch.Tensor]] = []

    def after_backward(self, iteration: int, model: torch.nn.Module) -> None:
        if self.max_norm <= 0:
            return
        params = list(self.parameters())
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], self.max_norm)
        self.held = [p.grad for p in params]
        for p in params:
            p.grad = None

    def before_step(self, iteration: int, model: torch.nn.Module) -> None:
        for p, grad in zip(self.parameters(), self.held):
            p.grad = grad
        self.held = []
