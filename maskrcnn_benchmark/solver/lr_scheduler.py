"""The benchmark's iteration-indexed learning-rate schedules, with warmup.

Both schedules set ``lr = base_lr * warmup(t) * decay`` on every parameter group,
where ``t = last_epoch`` is the iteration and ``base_lr`` is the group's
``initial_lr``. Linear warmup goes from ``warmup_factor`` at t = 0 to 1 at
t = ``warmup_iters``; constant warmup uses ``warmup_factor`` until then.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from typing import Any, Dict, List, Optional, Sequence

from torch.optim import Optimizer

WARMUP_METHODS = ("constant", "linear")


class _WarmupSchedule:
    """Common part: base LRs, warmup factor, applying LRs, state_dict round trip."""

    _state_keys: Sequence[str] = ()

    def __init__(self, optimizer: Optimizer, warmup_factor: float, warmup_iters: int, warmup_method: str) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if warmup_method not in WARMUP_METHODS:
            raise ValueError(f"warmup_method should be one of {WARMUP_METHODS}, got {warmup_method!r}")
        self.optimizer = optimizer
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0

    def warmup(self) -> float:
        """The warmup multiplier at iteration ``last_epoch``."""
        if self.last_epoch >= self.warmup_iters:
            return 1.0
        if self.warmup_method == "constant":
            return self.warmup_factor
        alpha = float(self.last_epoch) / self.warmup_iters
        return self.warmup_factor * (1 - alpha) + alpha

    def decay(self) -> float:
        raise NotImplementedError

    def get_lr(self) -> List[float]:
        factor = self.warmup() * self.decay()
        return [base_lr * factor for base_lr in self.base_lrs]

    def get_last_lr(self) -> List[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply_lr(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def state_dict(self) -> Dict[str, Any]:
        """Everything that defines the schedule's position (no optimizer, no logger)."""
        keys = ("warmup_factor", "warmup_iters", "warmup_method", "base_lrs", "last_epoch", *self._state_keys)
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (unknown keys, e.g. of torch's schedulers, are ignored)."""
        keys = ("warmup_factor", "warmup_iters", "warmup_method", "base_lrs", "last_epoch", *self._state_keys)
        for key in keys:
            if key in state_dict:
                setattr(self, key, state_dict[key])
        self._apply_lr()


class WarmupMultiStepLR(_WarmupSchedule):
    """Warmup, then multiply by ``gamma`` at each milestone: decay = gamma ** #(milestones <= t).

    ``step()`` advances one iteration (or jumps to ``epoch``).
    """

    _state_keys = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 1.0 / 3, warmup_iters: int = 500, warmup_method: str = "linear") -> None:
        if list(milestones) != sorted(milestones):
            raise ValueError(f"Milestones should be a list of increasing integers, got {list(milestones)}")
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method)
        self.milestones = list(milestones)
        self.gamma = gamma
        self._apply_lr()

    def decay(self) -> float:
        return self.gamma ** bisect_right(self.milestones, self.last_epoch)

    def step(self, epoch: Optional[int] = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        self._apply_lr()


class WarmupReduceLROnPlateau(_WarmupSchedule):
    """Warmup, then multiply by ``gamma`` (SOLVER.SCHEDULE.FACTOR) each time validation plateaus.

    decay = gamma ** stage_count. ``step(metric, epoch)`` is called every iteration
    with ``metric`` None except after a validation. For a validation metric:
    it improves when ``metric > best + threshold`` (then best = metric and the bad
    count resets), otherwise the bad count grows; while ``under_cooldown > 0`` it is
    decremented and the bad count zeroed; when the bad count reaches ``patience``,
    ``stage_count`` grows, the cooldown restarts and the bad count resets.
    Training should stop once ``stage_count >= max_decay_step`` (:attr:`reached_max_decay`).

    As in the benchmark, construction performs ``step(0)``: a first "validation"
    result of 0 is recorded (best becomes 0.0, one cooldown step is used) and
    ``last_epoch`` becomes 1.
    """

    _state_keys = ("gamma", "patience", "threshold", "cooldown", "max_decay_step", "stage_count", "best",
                   "num_bad_epochs", "under_cooldown")

    def __init__(self, optimizer: Optimizer, gamma: float = 0.5, warmup_factor: float = 1.0 / 3,
                 warmup_iters: int = 500, warmup_method: str = "linear", patience: int = 2,
                 threshold: float = 1e-4, cooldown: int = 1, max_decay_step: Optional[int] = None,
                 logger: Optional[logging.Logger] = None) -> None:
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method)
        self.gamma = gamma
        self.patience = patience
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_decay_step = max_decay_step
        self.stage_count = 0
        self.best = -1e12
        self.num_bad_epochs = 0
        self.under_cooldown = cooldown
        self.logger = logger or logging.getLogger(__name__)
        self.step(0)

    def decay(self) -> float:
        return self.gamma ** self.stage_count

    @property
    def reached_max_decay(self) -> bool:
        return self.max_decay_step is not None and self.stage_count >= self.max_decay_step

    def step(self, metrics: Optional[float] = None, epoch: Optional[int] = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if metrics is not None:
            if float(metrics) > self.best + self.threshold:
                self.best = float(metrics)
                self.num_bad_epochs = 0
            else:
                self.num_bad_epochs += 1
            if self.under_cooldown > 0:
                self.under_cooldown -= 1
                self.num_bad_epochs = 0
            if self.num_bad_epochs >= self.patience:
                self.stage_count += 1
                self.under_cooldown = self.cooldown
                self.num_bad_epochs = 0
                self.logger.info("Validation plateaued: learning rate multiplied by %s (decay step %d)",
                                 self.gamma, self.stage_count)
        self._apply_lr()
