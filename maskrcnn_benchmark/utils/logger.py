"""Logging set-up shared by the tools: console on the main process, optional log file."""
import logging
import os
import sys
from typing import Optional


def setup_logger(name: str, save_dir: Optional[str] = None, distributed_rank: int = 0,
                 filename: str = "log.txt") -> logging.Logger:
    """Configure and return logger ``name``; non-main processes only log warnings."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG if distributed_rank == 0 else logging.WARNING)
    logger.propagate = False
    logger.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
    console = logging.StreamHandler(stream=sys.stdout)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if save_dir and distributed_rank == 0:
        os.makedirs(save_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(save_dir, filename))
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger
