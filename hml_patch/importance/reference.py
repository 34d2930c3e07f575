"""Pure-PyTorch reference of the importance kernels (the fallback, and the tests' oracle).

Same entry points and arguments as the compiled `hml_patch._C`, and the same float32
operations in the same order as `csrc/importance.h`, so the compiled kernels can be
checked element-wise for equality (the MR forward sum differs only in summation order).
`params[k]` occupies `[offsets[k], offsets[k] + numel)` of every flat state buffer.
"""
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor

# Elements per piece on the CPU: temporaries stay cache-sized, and the pieces are below
# ATen's parallel grain size (32768), so each op runs without an OpenMP region; thousands
# of tiny parallel regions cost far more than they save (4x at 65M parameters, 2 threads).
# CUDA tensors are processed whole (one launch per op and parameter).
CPU_CHUNK = 32760


def _pieces(params: Sequence[Tensor], others: Sequence[Optional[Tensor]], offsets: Sequence[int]
            ) -> Iterator[Tuple[Tensor, Optional[Tensor], slice]]:
    """(parameter piece, matching piece of others[k] or None, slice of the flat buffers)."""
    for p, other, off in zip(params, others, offsets):
        theta = p.detach().reshape(-1)
        flat_other = None if other is None else other.view(-1)
        chunk = CPU_CHUNK if theta.device.type == "cpu" else max(theta.numel(), 1)
        for begin in range(0, theta.numel(), chunk):
            end = min(begin + chunk, theta.numel())
            yield (theta[begin:end], None if flat_other is None else flat_other[begin:end],
                   slice(off + begin, off + end))


def _mr_piece(theta: Tensor, sl: slice, parent_fisher: Tensor, parent_omega: Tensor, parent_theta: Tensor,
              out: Optional[Tensor], l2: bool, coef: float) -> Tensor:
    """The float64 MR sum of one piece; writes its gradient factors into out when given."""
    w = parent_fisher[sl] + parent_omega[sl]
    d = theta - parent_theta[sl]
    if out is not None:
        out.copy_(w * (d if l2 else torch.sign(d)) * coef)
    term = w * d * d if l2 else w * d.abs()
    return term.sum(dtype=torch.float64)


def _mr_total(device: torch.device, mr_factor: Optional[Tensor]) -> Optional[Tensor]:
    """The running MR sum of a step fused with the MR gradient, or None without fusion."""
    return None if mr_factor is None else torch.zeros((), dtype=torch.float64, device=device)


def _grad(grad: Optional[Tensor], theta: Tensor, grad_scale: float) -> Tensor:
    return torch.zeros_like(theta) if grad is None else grad * grad_scale


def _update_fisher(f: Tensor, g: Tensor, fisher_a: float, fisher_b: float, clamp_square: bool) -> None:
    """f = c * a + f * b, c = g^2 or clamp(nan_to_0(g^2), 1e-20, 1)."""
    current = g * g
    if clamp_square:
        current.masked_fill_(torch.isnan(current), 0.0).clamp_(1e-20, 1.0)
    f.mul_(fisher_b).add_(current.mul_(fisher_a))


@torch.no_grad()
def paper_step(params: Sequence[Tensor], grads: Sequence[Optional[Tensor]], offsets: Sequence[int],
               fisher: Tensor, omega: Tensor, theta_prev: Tensor, pending: Tensor, commit: bool,
               grad_scale: float, fisher_a: float, fisher_b: float, clamp_square: bool, eps: float,
               mr_factor: Optional[Tensor] = None, parent_fisher: Optional[Tensor] = None,
               parent_omega: Optional[Tensor] = None, parent_theta: Optional[Tensor] = None, l2: bool = True,
               coef: float = 0.0) -> Optional[Tensor]:
    """Commit the gated pending term, update F, pending = -g d / (F d^2 / 2 + eps).

    With mr_factor (flat, like the state) and the parent buffers, also the MR gradient at the
    updated parameters: its factors go to mr_factor and the MR sum (as `mr_forward`) is returned.
    """
    total = _mr_total(fisher.device, mr_factor)
    for theta, grad, sl in _pieces(params, grads, offsets):
        f, o, tp, pe = fisher[sl], omega[sl], theta_prev[sl], pending[sl]
        if commit:
            o.add_(pe)
        g = _grad(grad, theta, grad_scale)
        _update_fisher(f, g, fisher_a, fisher_b, clamp_square)
        d = theta - tp
        den = (f * 0.5).mul_(d).mul_(d).add_(eps)
        torch.div((g * d).neg_(), den, out=pe)
        tp.copy_(theta)
        if total is not None:
            total += _mr_piece(theta, sl, parent_fisher, parent_omega, parent_theta, mr_factor[sl], l2, coef)
    return total


@torch.no_grad()
def official_step(params: Sequence[Tensor], grads: Sequence[Optional[Tensor]], offsets: Sequence[int],
                  fisher: Tensor, omega: Tensor, theta_prev: Tensor, grad_scale: float, fisher_a: float,
                  fisher_b: float, clamp_square: bool, mr_factor: Optional[Tensor] = None,
                  parent_fisher: Optional[Tensor] = None, parent_omega: Optional[Tensor] = None,
                  parent_theta: Optional[Tensor] = None, l2: bool = True, coef: float = 0.0) -> Optional[Tensor]:
    """Update F, then omega += 2 max(g d, 1e-15) / max(F d^2, 1e-20) (NaN -> 0); MR fusion as
    in `paper_step`."""
    total = _mr_total(fisher.device, mr_factor)
    for theta, grad, sl in _pieces(params, grads, offsets):
        f, o, tp = fisher[sl], omega[sl], theta_prev[sl]
        g = _grad(grad, theta, grad_scale)
        _update_fisher(f, g, fisher_a, fisher_b, clamp_square)
        d = theta - tp
        num = (g * d).clamp_min_(1e-15)
        den = (f * d).mul_(d).clamp_min_(1e-20)
        contribution = num.mul_(2.0).div_(den)
        o.add_(contribution.masked_fill_(torch.isnan(contribution), 0.0))
        tp.copy_(theta)
        if total is not None:
            total += _mr_piece(theta, sl, parent_fisher, parent_omega, parent_theta, mr_factor[sl], l2, coef)
    return total


@torch.no_grad()
def mr_forward(params: Sequence[Tensor], outs: Sequence[Optional[Tensor]], offsets: Sequence[int],
               parent_fisher: Tensor, parent_omega: Tensor, parent_theta: Tensor, l2: bool, coef: float) -> Tensor:
    """sum_i (F_i + Omega_i) * D_i as a float64 scalar tensor, D = d^2 (l2) or |d|; writes
    (F + Omega) * (d or sign d) * coef into outs[k] where given (outs may be empty)."""
    total = torch.zeros((), dtype=torch.float64, device=parent_fisher.device)
    for theta, out, sl in _pieces(params, list(outs) or [None] * len(params), offsets):
        total += _mr_piece(theta, sl, parent_fisher, parent_omega, parent_theta, out, l2, coef)
    return total
