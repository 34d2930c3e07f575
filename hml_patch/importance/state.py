"""Importance state of HML's Model Reconstruction (HML.md sections 7-8).

`ImportanceState` keeps, over the relation-predictor parameters (P elements in all), flat
fp32 buffers: the Fisher F, the raw path-integral importance omega_raw, the parameters
before the optimizer step theta_prev and (paper rule) the pending contribution of the last
step; after a stage, the parent buffers F, Omega, theta of that stage for the MR penalty.

Per training step, with gradients already unscaled (AMP) and all-reduced (DDP):

    loss.backward(); scaler.unscale_(opt); [clip]
    state.before_step()                       # snapshot theta (free after the 1st step)
    scaler.step(opt); scaler.update()
    state.after_step(all_reduced_loss, step_was_applied)

`after_step` runs one fused element-wise pass (kernels.implementation) reading each
parameter and its `.grad` in place; the pass also refreshes theta_prev, so the next
`before_step` has nothing to copy. Parameters must therefore change only through the
optimizer between `after_step` and the next `before_step` (`bind`/`load_state_dict`
re-arm the snapshot).

Rules (`mode`, with the Fisher rule `fisher` defaulting to the mode's):
- "paper": Fisher "mean", F_t = (g^2 + (t-1) F_{t-1}) / t, computed as
  g^2 (1/t) + F ((t-1)/t); the contribution of step t,
  -g dtheta / (F_t dtheta^2 / 2 + eps), is kept pending and added to omega_raw at step
  t+1 only if the loss of step t+1 is below the loss of step t (the loss over step t
  decreased). The last step's pending term of a stage is dropped (its gate is unknown).
  Stage end: Omega = sigmoid(log10(P omega_raw / sum omega_raw)), computed as
  sigmoid(log10 r + log10 P - log10 sum r) (no overflow of P r) with r = max(omega_raw,
  FLOOR), FLOOR = the smallest normal float32 (1.2e-38): non-positive raw importance
  (movement that did not lower the loss, or no movement) becomes Omega ~ 0 (< 1e-12).
- "official" (the authors' code): Fisher "ema", F = alpha clamp(g^2) + (1-alpha) F from
  zero with clamp(x) = min(max(nan_to_0(x), 1e-20), 1), the first step of a stage
  discarded; omega_raw += 2 max(g dtheta, 1e-15) / max(F dtheta^2, 1e-20),
  ungated, with the code's sign. Stage end: F and Omega both sigmoid(log10 x - mean log10 x)
  (x clamped to FLOOR), Omega averaged with the previous parent Omega when there is one.

MR penalty, two paths giving the same result up to float rounding (fused_mr.py says where it
is bit for bit): `mr_penalty` (autograd, the reference) or
`fused_mr_penalty` + `add_mr_gradient` (fused_mr.py: the importance pass of each step also
prepares the next step's MR value and gradient factors; the gradient is added after the
backward, before clipping).

Checkpoints (`state_dict`): scalars plus {"params": {name: {buffer: tensor shaped like the
parameter}}}, names without a DDP "module." prefix. The tensors are views of the flat
buffers (torch.save writes each buffer once). theta_prev is not stored: after `after_step`
it equals the parameters and is re-read from them, so a resume is bit-identical.
"""
import logging
import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from hml_patch.importance import kernels
from hml_patch.importance.fused_mr import MRFactors, add_to_gradients
from hml_patch.importance.penalty import DISTANCES, mr_penalty

logger = logging.getLogger(__name__)

MODES = ("paper", "official")
FISHER_RULES = ("mean", "ema")
STATE_FORMAT = "hml_importance/1"
FLOOR = float(torch.finfo(torch.float32).tiny)
_DDP_PREFIX = "module."


def canonical_name(name: str) -> str:
    """Parameter name without DDP/DataParallel "module." prefixes."""
    while name.startswith(_DDP_PREFIX):
        name = name[len(_DDP_PREFIX):]
    return name


def select_parameters(module: nn.Module, name_filter: Sequence[str]) -> List[Tuple[str, nn.Parameter]]:
    """Named parameters whose name contains any of `name_filter` (the authors' substring match)."""
    return [(n, p) for n, p in module.named_parameters() if any(f in n for f in name_filter)]


class ImportanceState:
    """Fisher / Omega / MR state over a fixed list of named fp32 parameters on one device."""

    def __init__(self, named_parameters: Iterable[Tuple[str, Tensor]], mode: str = "paper", eps: float = 1e-8,
                 fisher_alpha: float = 0.5, fisher: Optional[str] = None) -> None:
        """mode: "paper" | "official" (Omega rule); fisher: "mean" | "ema" (default: the
        mode's own, mean for paper, ema for official); eps: paper denominator term;
        fisher_alpha: the EMA weight of the new squared gradient (ALPHA_FOR_FISHER)."""
        if mode not in MODES:
            raise ValueError(f"unknown importance mode {mode!r}; expected one of {MODES}")
        fisher = fisher or ("mean" if mode == "paper" else "ema")
        if fisher not in FISHER_RULES:
            raise ValueError(f"unknown Fisher rule {fisher!r}; expected one of {FISHER_RULES}")
        self.mode = mode
        self.fisher_rule = fisher
        self.eps = float(eps)
        self.fisher_alpha = float(fisher_alpha)
        named = self._check_parameters(named_parameters)
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.offsets: List[int] = []
        total = 0
        for _, p in named:
            self.offsets.append(total)
            total += p.numel()
        self.num_params = total
        self._params = [p for _, p in named]
        device = self._params[0].device
        self.fisher = torch.zeros(total, device=device)
        self.omega_raw = torch.zeros(total, device=device)
        self.theta_prev = torch.empty(total, device=device)
        self.pending: Optional[Tensor] = torch.zeros(total, device=device) if mode == "paper" else None
        self.parent_fisher: Optional[Tensor] = None
        self.parent_omega: Optional[Tensor] = None
        self.parent_theta: Optional[Tensor] = None
        self.step_count = 0
        self.committed_steps = 0
        self.has_pending = False
        self.prev_loss: Optional[float] = None
        self.stages_finished = 0
        self._snapshot_valid = False
        self._in_step = False
        self._mr: Optional[MRFactors] = None

    @classmethod
    def from_module(cls, module: nn.Module, name_filter: Sequence[str], **kwargs) -> "ImportanceState":
        """State over the parameters of `module` selected by `name_filter`."""
        return cls(select_parameters(module, name_filter), **kwargs)

    @staticmethod
    def _check_parameters(named_parameters: Iterable[Tuple[str, Tensor]]) -> List[Tuple[str, Tensor]]:
        named = [(canonical_name(n), p) for n, p in named_parameters]
        if not named:
            raise ValueError("ImportanceState needs at least one parameter (check the name filter)")
        device = named[0][1].device
        for name, p in named:
            if p.dtype != torch.float32 or not p.is_contiguous() or p.device != device:
                raise ValueError(f"parameter {name}: need contiguous float32 on {device}, got {p.dtype} "
                                 f"on {p.device} (contiguous={p.is_contiguous()})")
        if len({n for n, _ in named}) != len(named):
            raise ValueError("parameter names must be unique")
        return named

    @property
    def device(self) -> torch.device:
        return self.fisher.device

    @property
    def parameters(self) -> List[Tensor]:
        return list(self._params)

    @property
    def has_parent(self) -> bool:
        return self.parent_fisher is not None

    def bind(self, named_parameters: Iterable[Tuple[str, Tensor]]) -> None:
        """Follow another model with the same parameter names and shapes (the next stage's student)."""
        named = self._check_parameters(named_parameters)
        names = [n for n, _ in named]
        shapes = [tuple(p.shape) for _, p in named]
        if names != self.names or shapes != self.shapes:
            raise ValueError("bind() needs the same parameter names and shapes, in the same order")
        if self._in_step:
            raise RuntimeError("bind() between before_step() and after_step()")
        device = named[0][1].device
        if device != self.device:
            for attr in ("fisher", "omega_raw", "theta_prev", "pending", "parent_fisher", "parent_omega",
                         "parent_theta"):
                if getattr(self, attr) is not None:
                    setattr(self, attr, getattr(self, attr).to(device))
        self._params = [p for _, p in named]
        self._snapshot_valid = False
        if self._mr is not None:
            self._mr.factor = self._mr.factor.to(device)
            self._mr.value = None

    def _views(self, flat: Tensor) -> List[Tensor]:
        return [flat[o:o + math.prod(s)].view(s) for o, s in zip(self.offsets, self.shapes)]

    @torch.no_grad()
    def _refresh_snapshot(self) -> None:
        for view, p in zip(self._views(self.theta_prev), self._params):
            view.copy_(p)
        self._snapshot_valid = True

    def before_step(self) -> None:
        """Call right before optimizer.step(): makes sure theta_prev holds the current parameters."""
        if self._in_step:
            raise RuntimeError("before_step() called twice without after_step()")
        if self._mr is not None and self._mr.due:
            raise RuntimeError("the fused MR gradient of this step was not added: call add_mr_gradient() after "
                               "the backward pass (ImportanceHook.after_backward)")
        if not self._snapshot_valid:
            self._refresh_snapshot()
        self._in_step = True

    def _grads(self) -> List[Optional[Tensor]]:
        grads = []
        for name, p in zip(self.names, self._params):
            g = p.grad
            if g is not None:
                if g.is_sparse or g.dtype != torch.float32:
                    raise ValueError(f"gradient of {name} must be dense float32, got {g.dtype} (sparse={g.is_sparse})")
                g = g.detach().contiguous()
            grads.append(g)
        return grads

    def after_step(self, loss_value: Union[float, Tensor], step_was_applied: bool = True,
                   grad_scale: float = 1.0) -> None:
        """Update the state for the step just taken.

        loss_value: the all-reduced loss of this step (computed before the step), the same
        number on every rank. step_was_applied: False when the optimizer skipped the step
        (GradScaler found inf/NaN); the state is then left untouched. grad_scale multiplies
        the stored gradients (e.g. 1/clip coefficient to use the unclipped gradient).
        """
        if not self._in_step:
            raise RuntimeError("after_step() without before_step()")
        self._in_step = False
        if not step_was_applied:
            return
        loss = float(loss_value)
        params = [p.detach() for p in self._params]
        self.step_count += 1
        t = self.step_count
        fusion = {} if self._mr is None else self._mr.kernel_kwargs(self.parent_fisher, self.parent_omega,
                                                                     self.parent_theta)
        total = None
        if self.mode == "paper":
            commit = self.has_pending and loss < self.prev_loss
            total = kernels.implementation(self.device).paper_step(
                params, self._grads(), self.offsets, self.fisher, self.omega_raw, self.theta_prev, self.pending,
                commit, float(grad_scale), *self._fisher_args(t), self.eps, **fusion)
            self.committed_steps += int(commit)
            self.has_pending = True
            self.prev_loss = loss
        elif t == 1:  # the authors' code starts both F and Omega at the second iteration
            self._refresh_snapshot()
        else:
            total = kernels.implementation(self.device).official_step(
                params, self._grads(), self.offsets, self.fisher, self.omega_raw, self.theta_prev,
                float(grad_scale), *self._fisher_args(t - 1), **fusion)
        self._snapshot_valid = True
        if self._mr is not None:  # the next step's MR value and factors, or stale without a fused pass
            self._mr.value = None
            if total is not None:
                self._mr.set_total(total)

    def _fisher_args(self, n: int) -> Tuple[float, float, bool]:
        """(a, b, clamp) of F = c a + F b for the n-th Fisher update of the stage."""
        if self.fisher_rule == "mean":
            return 1.0 / n, (n - 1) / n, False
        return self.fisher_alpha, 1.0 - self.fisher_alpha, True

    @torch.no_grad()
    def finalize_stage(self) -> Dict[str, float]:
        """End the stage: the current parameters and importance become the parent of MR.

        Resets the accumulators for the next stage and returns summary numbers for the
        stage report.
        """
        if self._in_step:
            raise RuntimeError("finalize_stage() between before_step() and after_step()")
        if self.parent_fisher is None:
            self.parent_fisher = torch.empty_like(self.fisher)
            self.parent_theta = torch.empty_like(self.fisher)
        nonpositive = int((self.omega_raw <= 0).sum())
        if self.mode == "paper":
            clamped = self.omega_raw.clamp_min(FLOOR)
            log_scale = math.log10(self.num_params) - math.log10(float(clamped.sum(dtype=torch.float64)))
            omega = clamped.log10_().add_(log_scale).sigmoid_()
            self.parent_fisher.copy_(self.fisher)
        else:
            omega = _centred_log_sigmoid(self.omega_raw)
            if self.parent_omega is not None:
                omega.add_(self.parent_omega).mul_(0.5)
            self.parent_fisher.copy_(_centred_log_sigmoid(self.fisher))
        self.parent_omega = omega
        for view, p in zip(self._views(self.parent_theta), self._params):
            view.copy_(p)
        stats = {
            "steps": float(self.step_count),
            "committed_steps": float(self.committed_steps),
            "nonpositive_omega_raw_fraction": nonpositive / self.num_params,
            "parent_fisher_mean": float(self.parent_fisher.mean(dtype=torch.float64)),
            "parent_omega_mean": float(self.parent_omega.mean(dtype=torch.float64)),
        }
        self.fisher.zero_()
        self.omega_raw.zero_()
        if self.pending is not None:
            self.pending.zero_()
        self.step_count = 0
        self.committed_steps = 0
        self.has_pending = False
        self.prev_loss = None
        self._mr = None  # the parent changed; the next stage configures its own MR
        self.stages_finished += 1
        logger.info("importance stage %d finished (%s): %s", self.stages_finished, self.mode, stats)
        return stats

    def mr_penalty(self, weight: float = 1.0, distance: str = "l2",
                   params: Optional[Sequence[Tensor]] = None) -> Tensor:
        """weight * (1/P) * sum (F_parent + Omega_parent) * D(theta - theta_parent), differentiable.

        Paper: weight = beta, distance "l2". Official: weight = LAMBDA_FOR_PARAM, distance
        "abs" (the code's default) or "l2". params: the bound parameters unless given.
        """
        if not self.has_parent:
            raise RuntimeError("mr_penalty() needs a finished stage (finalize_stage or a loaded parent)")
        params = self._params if params is None else list(params)
        if [tuple(p.shape) for p in params] != self.shapes:
            raise ValueError("mr_penalty() params must match the bound parameters' shapes")
        return mr_penalty(params, self.offsets, self.parent_fisher, self.parent_omega, self.parent_theta,
                          weight=weight, distance=distance)

    def fused_mr_penalty(self, weight: float = 1.0, distance: str = "l2") -> Tensor:
        """The value of `mr_penalty` (detached, float32 scalar); its gradient is added by
        `add_mr_gradient`, which must run after this step's backward and before `before_step`.

        From then on every `after_step` also prepares the next step's value and gradient
        factors (fused_mr.py); otherwise (a stage's first step, after `bind` or a resume, another
        weight or distance) this call computes them in one pass.
        """
        if not self.has_parent:
            raise RuntimeError("fused_mr_penalty() needs a finished stage (finalize_stage or a loaded parent)")
        if distance not in DISTANCES:
            raise ValueError(f"unknown MR distance {distance!r}; expected one of {DISTANCES}")
        if self._in_step:
            raise RuntimeError("fused_mr_penalty() between before_step() and after_step()")
        mr = self._mr
        if mr is None or (mr.weight, mr.distance) != (float(weight), distance):
            factor = mr.factor if mr is not None else torch.empty(self.num_params, device=self.device)
            mr = self._mr = MRFactors(float(weight), distance, factor)
        if mr.value is None:
            mr.set_total(kernels.implementation(self.device).mr_forward(
                [p.detach() for p in self._params], self._views(mr.factor), self.offsets, self.parent_fisher,
                self.parent_omega, self.parent_theta, mr.l2, mr.coef()))
        mr.due = True
        return mr.value

    @torch.no_grad()
    def add_mr_gradient(self) -> None:
        """Add the MR gradient that `fused_mr_penalty` left for this step to the parameters' gradients
        (no-op when none is due). Call it on unscaled gradients, before clipping."""
        if self._mr is None or not self._mr.due:
            return
        self._mr.due = False
        add_to_gradients(self._params, self._views(self._mr.factor))

    def parameter_means(self) -> Dict[str, Dict[str, float]]:
        """Per parameter: the mean parent Fisher and Omega (for importance plots)."""
        if not self.has_parent:
            raise RuntimeError("parameter_means() needs a finished stage")
        return {
            name: {"fisher": float(f.mean(dtype=torch.float64)), "omega": float(o.mean(dtype=torch.float64))}
            for name, f, o in zip(self.names, self._views(self.parent_fisher), self._views(self.parent_omega))
        }

    def _buffers(self) -> Dict[str, Tensor]:
        buffers = {"fisher": self.fisher, "omega_raw": self.omega_raw}
        if self.pending is not None:
            buffers["pending"] = self.pending
        if self.has_parent:
            buffers.update(parent_fisher=self.parent_fisher, parent_omega=self.parent_omega,
                           parent_theta=self.parent_theta)
        return buffers

    def state_dict(self) -> Dict[str, object]:
        """Everything needed to resume, with tensors named per parameter (views, no copies)."""
        if self._in_step:
            raise RuntimeError("state_dict() between before_step() and after_step()")
        views = {key: self._views(flat) for key, flat in self._buffers().items()}
        return {
            "format": STATE_FORMAT,
            "mode": self.mode,
            "fisher_rule": self.fisher_rule,
            "eps": self.eps,
            "fisher_alpha": self.fisher_alpha,
            "step_count": self.step_count,
            "committed_steps": self.committed_steps,
            "has_pending": self.has_pending,
            "prev_loss": self.prev_loss,
            "stages_finished": self.stages_finished,
            "params": {name: {key: views[key][k] for key in views} for k, name in enumerate(self.names)},
        }

    @torch.no_grad()
    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Restore a `state_dict()`; names, shapes and mode must match."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not an importance state ({state.get('format')!r}, expected {STATE_FORMAT!r})")
        for key in ("mode", "fisher_rule"):
            if state[key] != getattr(self, key):
                raise ValueError(f"checkpoint importance {key} {state[key]!r} differs from {getattr(self, key)!r}")
        for key in ("eps", "fisher_alpha"):
            if state[key] != getattr(self, key):
                logger.warning("checkpoint importance %s=%s, configured %s: keeping the configured value",
                               key, state[key], getattr(self, key))
        saved: Dict[str, Dict[str, Tensor]] = state["params"]
        if set(saved) != set(self.names):
            missing, extra = sorted(set(self.names) - set(saved)), sorted(set(saved) - set(self.names))
            raise ValueError(f"importance checkpoint parameters differ: missing {missing[:5]}, unexpected {extra[:5]}")
        keys = set(saved[self.names[0]])
        has_parent = "parent_fisher" in keys
        if has_parent and self.parent_fisher is None:
            self.parent_fisher, self.parent_omega, self.parent_theta = (
                torch.empty_like(self.fisher) for _ in range(3))
        elif not has_parent:
            self.parent_fisher = self.parent_omega = self.parent_theta = None
        for key, flat in self._buffers().items():
            for name, shape, view in zip(self.names, self.shapes, self._views(flat)):
                tensor = saved[name][key]
                if tuple(tensor.shape) != shape:
                    raise ValueError(f"importance checkpoint {name}.{key} has shape {tuple(tensor.shape)}, "
                                     f"expected {shape}")
                view.copy_(tensor)
        self.step_count = int(state["step_count"])
        self.committed_steps = int(state["committed_steps"])
        self.has_pending = bool(state["has_pending"])
        self.prev_loss = None if state["prev_loss"] is None else float(state["prev_loss"])
        self.stages_finished = int(state["stages_finished"])
        self._snapshot_valid = False
        self._in_step = False
        self._mr = None  # the parent may have changed; the next fused_mr_penalty() recomputes


def _centred_log_sigmoid(x: Tensor) -> Tensor:
    """sigmoid(log10 x - mean(log10 x)) with x clamped to FLOOR (the authors' normalisation)."""
    logs = x.clamp_min(FLOOR).log10_()
    return logs.sub_(float(logs.mean(dtype=torch.float64))).sigmoid_()
