"""Faults injected through PyTorch's global hooks and torch.save, so that they reach any training
framework run by the public tools without touching its code.

Steps are counted over every optimizer of the process (one per iteration in the relation tools,
across HML's stages): ``at_step(k, action)`` runs ``action`` right after the k-th optimizer step.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
from typing import Callable, Iterator

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook


class StepCounter:
    """Counts optimizer steps; ``iteration`` is the one being computed now (steps done + 1)."""

    def __init__(self) -> None:
        self.steps = 0

    @property
    def iteration(self) -> int:
        return self.steps + 1


@contextlib.contextmanager
def at_step(step: int, action: Callable[[], None]) -> Iterator[StepCounter]:
    counter = StepCounter()

    def hook(optimizer, args, kwargs):
        counter.steps += 1
        if counter.steps == step:
            action()

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


@contextlib.contextmanager
def poison_trainable_linear(iteration: int, where: str) -> Iterator[None]:
    """In ``iteration``, the first trainable ``nn.Linear`` called gets a NaN output (``where="loss"``: the
    loss becomes NaN) or passes NaN back into its gradient (``where="grad"``: the loss stays finite)."""
    assert where in ("loss", "grad")
    state = {"done": False}

    def forward_hook(module, inputs, output):
        if state["done"] or counter.iteration != iteration or not isinstance(module, torch.nn.Linear) \
                or not module.weight.requires_grad or not module.training:
            return None
        state["done"] = True
        if where == "loss":
            return output * float("nan")
        output.register_hook(lambda grad: grad * float("nan"))
        return None

    handle = torch.nn.modules.module.register_module_forward_hook(forward_hook)
    with at_step(-1, lambda: None) as counter:
        try:
            yield
        finally:
            handle.remove()


@contextlib.contextmanager
def failing_save(call: int, fail: Callable[[], None]) -> Iterator[None]:
    """The ``call``-th ``torch.save`` writes half of its bytes, then calls ``fail`` (which raises, or kills
    the process: a write cut off in the middle)."""
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] != call:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        with open(f, "wb") as out:
            out.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
            out.flush()
            os.fsync(out.fileno())
        fail()
        raise AssertionError("fail() should not return")

    torch.save = save
    try:
        yield
    finally:
        torch.save = real_save


def kill_self(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)
