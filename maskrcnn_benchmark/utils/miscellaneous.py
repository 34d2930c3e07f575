"""Small file-system helpers for the tools."""
from __future__ import annotations

import os

from .atomic_io import atomic_path
from .comm import is_main_process


def mkdir(path: str) -> None:
    """Create ``path`` and its parents if missing."""
    os.makedirs(path, exist_ok=True)


def save_config(cfg, path: str) -> None:
    """Write the merged config as YAML to ``path`` (main process only, atomically)."""
    if not is_main_process():
        return
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(cfg.dump())
