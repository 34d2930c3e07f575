"""Iteration-based training loop shared by the detector and relation tools.

The loop knows nothing about the model or the config: the tools build the model,
optimizer, schedule, checkpointer and data loader and pass them in.
"""
from __future__ import annotations

import datetime
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from tqdm import tqdm

from maskrcnn_benchmark.solver.lr_scheduler import WarmupMultiStepLR, WarmupReduceLROnPlateau
from maskrcnn_benchmark.utils.checkpoint import Checkpointer, unwrap_model
from maskrcnn_benchmark.utils.comm import get_world_size, is_main_process
from maskrcnn_benchmark.utils.metric_logger import MetricLogger

AMP_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the message names the iteration and the loss terms."""


class NonFiniteGradientError(FloatingPointError):
    """A gradient became NaN or infinite (the loss was finite); the message names the iteration and parameters."""


class TrainingPreempted(SystemExit):
    """SIGTERM arrived: a checkpoint of the current iteration was written and the process exits with status 0.

    A ``SystemExit``, so that nothing after training (evaluation, a next stage) runs; the same
    command resumes from the checkpoint.
    """

    def __init__(self, iteration: int) -> None:
        super().__init__(0)
        self.iteration = iteration


class StopSignal:
    """While entered, SIGTERM (a cluster scheduler's pre-emption notice) only sets a flag.

    ``requested()`` tells whether any process received it (an all-reduce under torch.distributed, so
    that every rank stops after the same iteration). Outside the main thread no handler can be
    installed and the signal keeps its default action.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.received = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def requested(self) -> bool:
        if get_world_size() == 1:
            return self.received
        flag = torch.tensor([float(self.received)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


@dataclass
class StepOutcome:
    """What an optimizer step did, for hooks that follow the optimisation path.

    ``loss``: the total loss of the iteration averaged over processes (the same
    number on every rank) and ``losses`` its terms; ``clip_coef``: the factor gradient clipping multiplied
    the gradients by (1.0 without clipping); ``applied``: False when the
    GradScaler skipped the step (inf/NaN gradients).
    """

    loss: float
    losses: Dict[str, float] = field(default_factory=dict)
    clip_coef: float = 1.0
    applied: bool = True


class TrainHook:
    """Optional callbacks inside an iteration (override what you need).

    ``after_backward`` sees the gradients unscaled and before clipping;
    ``before_step`` sees them as the optimizer will (clipped);
    ``after_step`` runs right after the optimizer step.
    """

    def after_backward(self, iteration: int, model: torch.nn.Module) -> None:
        pass

    def before_step(self, iteration: int, model: torch.nn.Module) -> None:
        pass

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        pass


@dataclass
class TrainSummary:
    """How a :func:`do_train` call ended."""

    iteration: int
    stopped_early: bool
    last_val_result: Optional[float]
    seconds: float


def amp_settings(dtype: str, device: torch.device) -> Tuple[Optional[torch.dtype], Optional[torch.amp.GradScaler]]:
    """``(autocast dtype, grad scaler)`` for the config's DTYPE.

    "float32": no autocast. "float16": autocast with a GradScaler, CUDA only (as
    the benchmark's apex O1). "bfloat16": autocast without scaling, CUDA or CPU.
    """
    if dtype not in AMP_DTYPES:
        raise ValueError(f"DTYPE should be one of {sorted(AMP_DTYPES)}, got {dtype!r}")
    amp_dtype = AMP_DTYPES[dtype]
    if amp_dtype is torch.float16:
        if device.type != "cuda":
            raise ValueError("DTYPE float16 needs a CUDA device; use DTYPE bfloat16 (or float32) on the CPU")
        return amp_dtype, torch.amp.GradScaler("cuda")
    return amp_dtype, None


def move_to_device(obj: Any, device: torch.device) -> Any:
    """``obj.to(device)`` for tensors, ImageList and BoxList; applied inside lists, tuples and dicts."""
    if hasattr(obj, "to"):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to_device(item, device) for item in obj)
    if isinstance(obj, dict):
        return {key: move_to_device(value, device) for key, value in obj.items()}
    return obj


def reduce_loss_dict(loss_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The loss terms averaged over all processes (detached; for logging and the finite check)."""
    names = sorted(loss_dict)
    values = torch.stack([loss_dict[name].detach().float() for name in names])
    world_size = get_world_size()
    if world_size > 1:
        dist.all_reduce(values)
        values /= world_size
    return dict(zip(names, values))


def check_finite(reduced: Mapping[str, torch.Tensor], iteration: int) -> None:
    """Raise :class:`NonFiniteLossError` naming the NaN / Inf terms of ``reduced``."""
    bad = {name: value.item() for name, value in reduced.items() if not torch.isfinite(value)}
    if bad:
        terms = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise NonFiniteLossError(f"Non-finite loss at iteration {iteration}: {terms}. Training stopped; "
                                 f"lower the learning rate or check the data of this iteration")


def check_finite_gradients(named_params: Sequence[Tuple[str, torch.nn.Parameter]], iteration: int) -> None:
    """Raise :class:`NonFiniteGradientError` naming the parameters whose gradient holds NaN / Inf."""
    grads = [p.grad.detach() for _, p in named_params if p.grad is not None]
    if not grads or bool(torch.isfinite(torch.stack([g.sum() for g in grads])).all()):
        return  # one reduction per tensor; the per-tensor search below only runs on a non-finite sum
    bad = [name for name, p in named_params if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    if bad:
        raise NonFiniteGradientError(f"Non-finite gradient at iteration {iteration} (the loss was finite) in "
                                     f"{', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''}. Training stopped "
                                     f"before the optimizer step; nothing of this iteration was saved")


def log_grad_norms(named_params: Sequence[Tuple[str, torch.nn.Parameter]], total_norm: float,
                   logger: logging.Logger, top: int = 20) -> None:
    """Log the global gradient norm and the ``top`` largest per-tensor norms (debugging aid)."""
    norms = sorted(((p.grad.detach().norm(2).item(), n) for n, p in named_params if p.grad is not None),
                   reverse=True)
    lines = [f"{name:<60s}: {norm:.5f}" for norm, name in norms[:top]]
    logger.info("Gradient norm %.5f over %d tensors; largest:\n%s", total_norm, len(norms), "\n".join(lines))


def _align_scheduler(scheduler: Any, start_iter: int, logger: logging.Logger) -> None:
    """Move one of our schedules to ``start_iter`` when resuming restored no schedule state."""
    if start_iter == 0 or not isinstance(scheduler, (WarmupMultiStepLR, WarmupReduceLROnPlateau)):
        return
    if scheduler.last_epoch != start_iter:
        logger.warning("The learning-rate schedule is at iteration %d but training resumes at %d (its state "
                       "was not in the checkpoint); moving it to %d", scheduler.last_epoch, start_iter, start_iter)
        scheduler.step(epoch=start_iter)


def do_train(model: torch.nn.Module, data_loader: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
             checkpointer: Checkpointer, device: torch.device, checkpoint_period: int,
             arguments: Dict[str, Any], *, max_iter: Optional[int] = None,
             val_fn: Optional[Callable[[torch.nn.Module], Optional[float]]] = None, val_period: int = 0,
             grad_clip: Optional[float] = None, amp_dtype: Optional[torch.dtype] = None,
             grad_scaler: Optional[torch.amp.GradScaler] = None, tensorboard: Any = None,
             loss_check: bool = True, log_period: int = 20, grad_log_period: int = 0,
             hooks: Sequence[TrainHook] = (), logger: Optional[logging.Logger] = None) -> TrainSummary:
    """Train from ``arguments["iteration"]`` up to ``max_iter`` (default ``len(data_loader)``).

    Each batch ``(images, targets, ...)`` goes to ``model(images, targets)``, which
    returns a dict of loss tensors; their sum is back-propagated (under
    ``torch.autocast`` when ``amp_dtype`` is set, scaled when ``grad_scaler`` is
    given), gradients are clipped to global norm ``grad_clip`` when set, and the
    optimizer steps. Then, in this order: validation every ``val_period``
    iterations (``val_fn(unwrapped model)`` returns the metric, e.g. R@100, and
    must return the same value on every process); the schedule steps
    (WarmupReduceLROnPlateau with the validation metric or None and
    ``epoch=iteration``, stopping training once it reached its max decay steps;
    other schedules with ``step()``); checkpoints ``model_{iteration:07d}`` every
    ``checkpoint_period`` and ``model_final`` at the end (also when stopped
    early). Saving after the schedule step makes a resumed run continue exactly.
    ``arguments`` is saved into every checkpoint; pass it back (updated with the
    dict returned by ``checkpointer.load()``) to resume. The grad scaler's state
    travels in the checkpoint too.

    Losses are averaged over processes for logging; a NaN/Inf average raises
    :class:`NonFiniteLossError` on every process before the backward pass, and
    (without a grad scaler, which skips such steps itself) a NaN/Inf gradient
    raises :class:`NonFiniteGradientError` before any hook or the optimizer sees it.
    A log line (the benchmark's format) is written every ``log_period``
    iterations, per-tensor gradient norms every ``grad_log_period`` (0 = never);
    ``tensorboard`` (a :class:`~maskrcnn_benchmark.utils.tensorboard.TensorboardLogger`)
    receives the logged meters and lr under ``train/`` and validation results under ``val/``.
    SIGTERM makes the loop finish the current iteration, write ``model_{iteration:07d}``
    and raise :class:`TrainingPreempted` (exit status 0); any other interruption saves
    nothing: resume from the last periodic checkpoint.
    """
    logger = logger or logging.getLogger("maskrcnn_benchmark.trainer")
    max_iter = len(data_loader) if max_iter is None else max_iter
    start_iter = int(arguments.get("iteration", 0))
    scaler_state = arguments.pop("grad_scaler", None)
    if grad_scaler is not None and scaler_state:
        grad_scaler.load_state_dict(scaler_state)
    _align_scheduler(scheduler, start_iter, logger)
    if start_iter >= max_iter:
        logger.info("Training already reached iteration %d of %d; nothing to do", start_iter, max_iter)
        if start_iter == max_iter:
            checkpointer.restore_final("model_final")  # when a kill or full disk cut its write short
        return TrainSummary(start_iter, False, None, 0.0)

    trainable: List[Tuple[str, torch.nn.Parameter]] = [(n, p) for n, p in model.named_parameters()
                                                       if p.requires_grad]
    meters = MetricLogger(delimiter="  ")
    logger.info("Start training at iteration %d of %d", start_iter, max_iter)
    progress = tqdm(total=max_iter, initial=start_iter, desc="train", disable=not is_main_process(),
                    dynamic_ncols=True)
    last_val_result: Optional[float] = None
    stopped_early = False
    iteration = start_iter
    model.train()
    start_time = end = time.perf_counter()
    with StopSignal(device) as stop:
        for iteration, batch in enumerate(data_loader, start_iter):
            if iteration >= max_iter:
                break
            data_time = time.perf_counter() - end
            iteration += 1
            arguments["iteration"] = iteration
            images, targets = move_to_device(batch[0], device), move_to_device(batch[1], device)

            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss_dict = model(images, targets)
            losses = sum(loss_dict.values())
            reduced = reduce_loss_dict(loss_dict)
            if loss_check:
                check_finite(reduced, iteration)
            total_loss = float(sum(reduced.values()))
            meters.update(loss=total_loss, **reduced)

            optimizer.zero_grad(set_to_none=True)
            if grad_scaler is not None:
                grad_scaler.scale(losses).backward()
                grad_scaler.unscale_(optimizer)
            else:
                losses.backward()
                if loss_check:
                    check_finite_gradients(trainable, iteration)
            for hook in hooks:
                hook.after_backward(iteration, model)
            outcome = StepOutcome(loss=total_loss, losses={name: float(value) for name, value in reduced.items()})
            if grad_clip:
                grad_norm = float(torch.nn.utils.clip_grad_norm_([p for _, p in trainable], grad_clip))
                outcome.clip_coef = min(1.0, grad_clip / (grad_norm + 1e-6))  # clip_grad_norm_'s own factor
                meters.update(grad_norm=grad_norm)
                if grad_log_period and (iteration == start_iter + 1 or iteration % grad_log_period == 0):
                    log_grad_norms(trainable, grad_norm, logger)
            for hook in hooks:
                hook.before_step(iteration, model)
            if grad_scaler is not None:
                scale = grad_scaler.get_scale()
                grad_scaler.step(optimizer)
                grad_scaler.update()
                outcome.applied = grad_scaler.get_scale() >= scale  # the scale only shrinks after a skipped step
            else:
                optimizer.step()
            for hook in hooks:
                hook.after_step(iteration, model, outcome)

            batch_time = time.perf_counter() - end
            end = time.perf_counter()
            meters.update(time=batch_time, data=data_time)

            val_result = None
            if val_fn is not None and val_period > 0 and iteration % val_period == 0:
                val_result = val_fn(unwrap_model(model))
                model.train()
                if val_result is not None:
                    last_val_result = float(val_result)
                    logger.info("Validation result at iteration %d: %.4f", iteration, last_val_result)
                    if tensorboard is not None:
                        tensorboard.add_scalars({"result": last_val_result}, iteration, prefix="val")
                end = time.perf_counter()

            if isinstance(scheduler, WarmupReduceLROnPlateau):
                scheduler.step(val_result, epoch=iteration)
                stopped_early = scheduler.reached_max_decay and iteration < max_iter
            else:
                scheduler.step()

            periodic = checkpoint_period > 0 and iteration % checkpoint_period == 0
            final = iteration == max_iter or stopped_early
            if periodic:
                _save(checkpointer, f"model_{iteration:07d}", arguments, grad_scaler)
            if final:
                _save(checkpointer, "model_final", arguments, grad_scaler)
            if stop.requested():
                if not (periodic or final):
                    _save(checkpointer, f"model_{iteration:07d}", arguments, grad_scaler)
                logger.warning("SIGTERM received: checkpoint of iteration %d of %d written; exiting (status 0). "
                               "Run the same command again to resume", iteration, max_iter)
                progress.close()
                raise TrainingPreempted(iteration)

            progress.update(1)
            progress.set_postfix(loss=f"{meters.loss.median:.4f}", refresh=False)
            if iteration % log_period == 0 or iteration == max_iter or stopped_early:
                _log_progress(logger, meters, optimizer, device, iteration, max_iter)
                if tensorboard is not None:
                    scalars = {name: meter.median for name, meter in meters.meters.items()}
                    scalars["lr"] = optimizer.param_groups[-1]["lr"]
                    tensorboard.add_scalars(scalars, iteration, prefix="train")
            if stopped_early:
                logger.info("Validation plateaued %d times: stopping at iteration %d", scheduler.stage_count, iteration)
                break
    progress.close()

    total = time.perf_counter() - start_time
    done = max(iteration - start_iter, 1)
    logger.info("Total training time: %s (%.4f s / it)", datetime.timedelta(seconds=int(total)), total / done)
    return TrainSummary(iteration, stopped_early, last_val_result, total)


def _save(checkpointer: Checkpointer, name: str, arguments: Dict[str, Any],
          grad_scaler: Optional[torch.amp.GradScaler]) -> None:
    extra = dict(arguments)
    if grad_scaler is not None:
        extra["grad_scaler"] = grad_scaler.state_dict()
    checkpointer.save(name, **extra)


def _log_progress(logger: logging.Logger, meters: MetricLogger, optimizer: torch.optim.Optimizer,
                  device: torch.device, iteration: int, max_iter: int) -> None:
    """The benchmark's line: eta, iter, meters (median (global average)), lr, max mem (MB)."""
    eta_seconds = meters.time.global_avg * (max_iter - iteration)
    memory = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else 0.0
    logger.info("  ".join([
        f"eta: {datetime.timedelta(seconds=int(eta_seconds))}",
        f"iter: {iteration}",
        str(meters),
        f"lr: {optimizer.param_groups[-1]['lr']:.6f}",
        f"max mem: {memory:.0f}",
    ]))
