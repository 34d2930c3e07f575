"""Running averages of training metrics and the benchmark's log line format."""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Dict, Union

import torch

Number = Union[float, int, torch.Tensor]


class SmoothedValue:
    """A series of values with its median and mean over a sliding window and its global mean."""

    def __init__(self, window_size: int = 20) -> None:
        self.deque: deque = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        self.deque.append(value)
        self.total += value
        self.count += 1

    @property
    def median(self) -> float:
        return float(torch.tensor(list(self.deque)).median().item())

    @property
    def avg(self) -> float:
        return float(torch.tensor(list(self.deque)).mean().item())

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)


class MetricLogger:
    """Named :class:`SmoothedValue` meters, printed as ``name: median (global_avg)``.

    Meters are also reachable as attributes (``meters.time.global_avg``).
    """

    def __init__(self, delimiter: str = "\t", window_size: int = 20) -> None:
        self.meters: Dict[str, SmoothedValue] = defaultdict(lambda: SmoothedValue(window_size))
        self.delimiter = delimiter

    def update(self, **kwargs: Number) -> None:
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self.meters[name].update(float(value))

    def __getattr__(self, name: str) -> SmoothedValue:
        meters = self.__dict__.get("meters")
        if meters is not None and name in meters:
            return meters[name]
        raise AttributeError(f"{type(self).__name__} has no meter or attribute {name!r}")

    def __str__(self) -> str:
        return self.delimiter.join(f"{name}: {meter.median:.4f} ({meter.global_avg:.4f})"
                                   for name, meter in self.meters.items())
