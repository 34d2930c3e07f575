"""Find NaN / Inf values in nested training state, so a non-finite buffer is never written to disk."""
from __future__ import annotations

from typing import Any, Optional

import torch


class NonFiniteStateError(FloatingPointError):
    """A tensor about to be saved holds NaN or Inf; the message names its key and the iteration."""


def first_non_finite(obj: Any, where: str = "") -> Optional[str]:
    """The dotted key of the first floating tensor in ``obj`` with a NaN / Inf value, else None.

    Walks dicts, lists and tuples. Only floating tensors count: integer and bool tensors (random-generator
    states, counters) cannot be non-finite, and plain floats may be infinite on purpose (a plateau
    schedule's initial "best" value).
    """
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return None if bool(torch.isfinite(obj).all()) else where
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = first_non_finite(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None
