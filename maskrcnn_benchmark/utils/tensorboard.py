"""TensorBoard scalars when tensorboard is installed; a silent no-op otherwise."""
from __future__ import annotations

import logging
from typing import Mapping, Optional

from .comm import is_main_process

logger = logging.getLogger(__name__)


class TensorboardLogger:
    """Writes scalars to ``log_dir`` on the main process.

    Without the ``tensorboard`` package (or off the main process, or with
    ``enabled`` False) every method does nothing; the missing package is
    reported once, at construction.
    """

    def __init__(self, log_dir: str, enabled: bool = True) -> None:
        self.writer = None
        if not enabled or not is_main_process():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed: no TensorBoard scalars will be written")
            return
        self.writer = SummaryWriter(log_dir=log_dir)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def add_scalars(self, scalars: Mapping[str, float], step: int, prefix: Optional[str] = None) -> None:
        """Write each ``name: value`` as its own scalar series, optionally under ``prefix/``."""
        if self.writer is None:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"{prefix}/{name}" if prefix else name, float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
