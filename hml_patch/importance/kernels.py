"""Chooses who runs the importance kernels: the compiled `hml_patch._C` or the PyTorch reference.

"auto" (default) uses the compiled module when it can serve the tensors' device and falls
back to `reference` otherwise, logging one warning per reason. "native" and "torch" force
a side (tests, benchmarks); forcing "native" where it cannot run raises. The selection
lives in this module, like a registry: it is process-wide on purpose.
"""
import contextlib
import importlib
import logging
from types import ModuleType
from typing import Iterator, Optional

import torch

from hml_patch.importance import reference

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "native", "torch")
_REBUILD_HINT = "rebuild with `pip install --no-build-isolation -e .`"


class _Selection:
    """The loaded compiled module (if any), the forced backend and the warnings already given."""

    def __init__(self) -> None:
        self.module: Optional[ModuleType] = None
        self.import_error: Optional[str] = None
        self.tried_import = False
        self.backend = "auto"
        self.warned: set = set()


_selection = _Selection()


def native_module() -> Optional[ModuleType]:
    """The compiled kernels, imported on first use; None when they are not built."""
    if not _selection.tried_import:
        _selection.tried_import = True
        try:
            _selection.module = importlib.import_module("hml_patch._C")
        except ImportError as exc:
            _selection.import_error = str(exc)
    return _selection.module


def use_native_module(module: ModuleType) -> None:
    """Install an already built module (e.g. from `extension_spec.build_jit`) as the native side."""
    _selection.module = module
    _selection.tried_import = True
    _selection.import_error = None


def set_backend(name: str) -> None:
    """Select "auto", "native" or "torch" for every later call."""
    if name not in BACKENDS:
        raise ValueError(f"unknown importance backend {name!r}; expected one of {BACKENDS}")
    _selection.backend = name


def get_backend() -> str:
    return _selection.backend


@contextlib.contextmanager
def forced_backend(name: str) -> Iterator[None]:
    """Temporarily select a backend (restores the previous selection on exit)."""
    previous = _selection.backend
    set_backend(name)
    try:
        yield
    finally:
        _selection.backend = previous


def native_unavailable_reason(device: torch.device) -> Optional[str]:
    """Why the compiled kernels cannot serve `device`, or None when they can."""
    module = native_module()
    if module is None:
        return f"hml_patch._C is not built ({_selection.import_error}); {_REBUILD_HINT}"
    if device.type == "cuda" and not module.has_cuda():
        return f"hml_patch._C was built without CUDA; {_REBUILD_HINT} on a machine with nvcc"
    if device.type not in ("cpu", "cuda"):
        return f"no compiled importance kernels for device type {device.type!r}"
    return None


def implementation(device: torch.device) -> ModuleType:
    """The module whose paper_step/official_step/mr_forward/mr_backward serve tensors on `device`."""
    if _selection.backend == "torch":
        return reference
    reason = native_unavailable_reason(torch.device(device))
    if reason is None:
        return native_module()
    if _selection.backend == "native":
        raise RuntimeError(f"importance backend 'native' forced, but {reason}")
    if reason not in _selection.warned:
        _selection.warned.add(reason)
        logger.warning("HML importance update falls back to the PyTorch reference: %s", reason)
    return reference


def backend_name(device: torch.device) -> str:
    """"native" or "torch": who `implementation(device)` would pick (without warning)."""
    if _selection.backend == "torch":
        return "torch"
    return "native" if native_unavailable_reason(torch.device(device)) is None else "torch"
