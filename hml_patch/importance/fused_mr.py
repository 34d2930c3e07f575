"""The MR penalty's gradient as flat factors that the importance pass refreshes (HML.FUSED_MR_GRAD).

The autograd path (`penalty.mr_penalty`, the reference) runs one pass per step in the forward
for the value and the gradient factors, allocates a gradient tensor per parameter and lets
autograd accumulate them. The fused path keeps the factors

    coef (F + Omega) * (d or sign d),  d = theta - theta_parent,  coef = 2 beta / P (l2), beta / P (abs)

in one persistent flat buffer. The importance pass that follows each optimizer step already
reads every updated parameter; it also writes these factors and the MR sum for the next
step, so the next forward only reports the value (detached) and, after its backward, the
factors are added to the parameters' gradients (the trainer's ``after_backward`` hook: AMP
gradients already unscaled, DDP gradients already averaged, before clipping). Where no pass
prepared them (a stage's first step, after ``bind`` or a resume), ``mr_forward`` computes
them: the same float32 arithmetic and summation order, so value and factors equal the
autograd path's bit for bit, and so does the gradient of a parameter whose loss gradient is
one term. Where autograd sums several terms (a weight used at every LSTM step; DDP's
average) it adds MR's somewhere in that sum and the fused path adds it last: the same up to
float rounding.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor


@dataclass
class MRFactors:
    """The MR gradient factors at the current parameters for one (weight, distance).

    value: loss_mr at the current parameters (float32 scalar) once computed, None while the
    factors are stale; due: a forward reported the value and its gradient is not added yet.
    """

    weight: float
    distance: str
    factor: Tensor
    value: Optional[Tensor] = None
    due: bool = False

    @property
    def l2(self) -> bool:
        return self.distance == "l2"

    def coef(self) -> float:
        """The factor's scale, as `penalty._MRPenalty` computes it."""
        return (2.0 if self.l2 else 1.0) * self.weight / self.factor.numel()

    def set_total(self, total: Tensor) -> None:
        """Store the value from the float64 MR sum (the autograd path's expression)."""
        self.value = (total * (self.weight / self.factor.numel())).to(torch.float32)

    def kernel_kwargs(self, parent_fisher: Tensor, parent_omega: Tensor, parent_theta: Tensor) -> Dict[str, object]:
        """Keyword arguments that make a step kernel fuse the factors and return the MR sum."""
        return {"mr_factor": self.factor, "parent_fisher": parent_fisher, "parent_omega": parent_omega,
                "parent_theta": parent_theta, "l2": self.l2, "coef": self.coef()}


def add_to_gradients(params: Sequence[Tensor], factors: Sequence[Tensor]) -> None:
    """grad += factor for every parameter that requires a gradient (grad = a copy where it has none,
    as autograd's accumulation would create it)."""
    grads, present = [], []
    for p, factor in zip(params, factors):
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = factor.clone()
        else:
            grads.append(p.grad)
            present.append(factor)
    if grads:
        torch._foreach_add_(grads, present)
