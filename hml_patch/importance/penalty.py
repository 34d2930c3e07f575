"""The MR penalty (HML Eq. 12) as an autograd function over the parameter tensors.

loss = weight * (1/P) * sum_i (F_i + Omega_i) * D(theta_i - theta_parent_i),
D = d^2 ("l2", the paper) or |d| ("abs", the authors' default DISTILL_TYPE). The forward
is one pass over the flat parent buffers that also writes the gradient (per parameter,
nothing concatenated); backward only scales it by the incoming gradient (skipped on the
CPU when that is 1), so the penalty costs one pass instead of two.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from hml_patch.importance import kernels

DISTANCES = ("l2", "abs")
_FIRST_PARAM = 4  # position of the first parameter among _MRPenalty.forward's inputs


class _MRPenalty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, buffers: Tuple[Tensor, Tensor, Tensor], offsets: Tuple[int, ...], l2: bool, weight: float,
                *params: Tensor) -> Tensor:
        parent_fisher = buffers[0]
        num = parent_fisher.numel()
        coef = (2.0 if l2 else 1.0) * weight / num
        outs = _gradient_outputs(ctx, params)
        impl = kernels.implementation(parent_fisher.device)
        total = impl.mr_forward([p.detach() for p in params], outs, list(offsets), *buffers, l2, coef)
        ctx.buffers, ctx.offsets, ctx.l2, ctx.coef, ctx.outs = buffers, offsets, l2, coef, outs
        ctx.save_for_backward(*params)
        return (total * (weight / num)).to(torch.float32)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        outs, ctx.outs = ctx.outs, None
        if outs is None:  # a second backward through the same graph (retain_graph): recompute
            params = ctx.saved_tensors
            outs = _gradient_outputs(ctx, params)
            impl = kernels.implementation(ctx.buffers[0].device)
            impl.mr_forward([p.detach() for p in params], outs, list(ctx.offsets), *ctx.buffers, ctx.l2, ctx.coef)
        present = [o for o in outs if o is not None]
        scale = grad_output.detach().to(torch.float32)
        if present and not (scale.device.type == "cpu" and float(scale) == 1.0):
            torch._foreach_mul_(present, scale)
        return (None, None, None, None, *outs)


def _gradient_outputs(ctx, params: Sequence[Tensor]) -> List[Optional[Tensor]]:
    """A fresh gradient tensor for every parameter that needs one, None for the others."""
    return [torch.empty(p.shape, dtype=p.dtype, device=p.device) if ctx.needs_input_grad[_FIRST_PARAM + k]
            else None for k, p in enumerate(params)]


def mr_penalty(params: Sequence[Tensor], offsets: Sequence[int], parent_fisher: Tensor, parent_omega: Tensor,
               parent_theta: Tensor, weight: float = 1.0, distance: str = "l2") -> Tensor:
    """weight * mean over the P parent elements of (F + Omega) * D(params - theta_parent)."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown MR distance {distance!r}; expected one of {DISTANCES}")
    if not torch.is_grad_enabled():  # value only (e.g. logging under no_grad): no gradient pass
        impl = kernels.implementation(parent_fisher.device)
        total = impl.mr_forward([p.detach() for p in params], [], list(offsets), parent_fisher, parent_omega,
                                parent_theta, distance == "l2", 0.0)
        return (total * (float(weight) / parent_fisher.numel())).to(torch.float32)
    return _MRPenalty.apply((parent_fisher, parent_omega, parent_theta), tuple(offsets), distance == "l2",
                            float(weight), *params)
