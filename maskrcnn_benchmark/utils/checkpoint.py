"""Checkpoints in the benchmark's layout: save, resume from ``last_checkpoint``, load detector weights.

A checkpoint file ``<save_dir>/<name>.pth`` holds ``{"model": state_dict,
"optimizer": ..., "scheduler": ... (unless custom_scheduler), **extra}``; the
trainers pass ``iteration`` as an extra. ``<save_dir>/last_checkpoint`` names the
newest file, relative to ``save_dir`` (the benchmark wrote the path it saved to;
such files are still read). Both files are written atomically.

Files are read with ``torch.load(weights_only=True)``, which cannot run code from
the file. A file that needs full unpickling is refused with an error that names
it; setting the environment variable ``SGG_ALLOW_UNSAFE_LOAD=1`` allows it for
trusted files.
"""
from __future__ import annotations

import logging
import os
import pickle
import shutil
from typing import Any, Callable, Dict, Mapping, Optional

import torch

from .atomic_io import atomic_path
from .comm import is_main_process
from .finite import NonFiniteStateError, first_non_finite
from .model_serialization import LoadReport, load_state_dict

UNSAFE_LOAD_ENV = "SGG_ALLOW_UNSAFE_LOAD"
LAST_CHECKPOINT = "last_checkpoint"


class CheckpointLoadError(RuntimeError):
    """A checkpoint file could not be read (missing, unsupported or refused by the safe loader)."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (full disk, quota, I/O error); the previous checkpoint is untouched."""


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a (Distributed)DataParallel wrapper, or ``model`` itself."""
    return model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                              torch.nn.DataParallel)) else model


def _unsafe_load_allowed() -> bool:
    return os.environ.get(UNSAFE_LOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def _unpickling_reason(err: Exception) -> str:
    """The informative part of torch's weights-only error (e.g. "Unsupported global: GLOBAL x.Y ...")."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        return text.split(marker, 1)[1].strip().splitlines()[0].split(" Please use")[0]
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """Read ``path`` on the CPU, safely unless ``SGG_ALLOW_UNSAFE_LOAD`` is set.

    Returns a dict with a ``model`` entry: a file that is a bare state_dict is wrapped.
    """
    if not os.path.isfile(path):
        raise CheckpointLoadError(f"Checkpoint file {path} does not exist")
    if _unsafe_load_allowed():
        data = torch.load(path, map_location="cpu", weights_only=False)
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            reason = _unpickling_reason(err)
            raise CheckpointLoadError(
                f"Checkpoint {path} holds Python objects that the safe loader "
                f"(torch.load(weights_only=True)) refuses ({reason.rstrip('.')}). Full unpickling can execute code "
                f"stored in the file; if you trust {path}, set the environment variable "
                f"{UNSAFE_LOAD_ENV}=1 to load it with weights_only=False.") from err
    if not isinstance(data, dict):
        raise CheckpointLoadError(f"Checkpoint {path} holds a {type(data).__name__}, expected a dict")
    if "model" in data and isinstance(data["model"], Mapping):
        return dict(data)
    if data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"model": data}
    raise CheckpointLoadError(f"Checkpoint {path} is neither a state_dict nor a dict with a 'model' entry "
                              f"(keys: {list(data)[:10]})")


class Checkpointer:
    """Save and restore model, optimizer, scheduler and extra training state in ``save_dir``.

    ``cfg`` is accepted for the benchmark's signature and not read.
    ``save_to_disk`` defaults to "is this the main process" (the benchmark's tools
    passed that explicitly). With ``custom_scheduler`` the scheduler is neither
    saved nor restored, as in the benchmark's relation training.
    """

    def __init__(self, cfg: Any, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                 scheduler: Any = None, save_dir: str = "", save_to_disk: Optional[bool] = None,
                 logger: Optional[logging.Logger] = None, custom_scheduler: bool = False) -> None:
        self.cfg = cfg
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_dir = save_dir
        self.save_to_disk = is_main_process() if save_to_disk is None else save_to_disk
        self.logger = logger or logging.getLogger(__name__)
        self.custom_scheduler = custom_scheduler
        self.last_load_report: Optional[LoadReport] = None

    # ------------------------------------------------------------------ saving
    def save(self, name: str, **extra: Any) -> Optional[str]:
        """Write ``<save_dir>/<name>.pth`` and point ``last_checkpoint`` at it; return its path.

        Does nothing (returns None) without a save_dir or off the saving process.
        A floating tensor with NaN / Inf anywhere in the state raises ``NonFiniteStateError``
        and nothing is written; a failed write (e.g. a full disk) raises ``CheckpointWriteError``
        and leaves the previous checkpoint and ``last_checkpoint`` as they were.
        """
        data: Dict[str, Any] = {"model": unwrap_model(self.model).state_dict()}
        if self.optimizer is not None:
            data["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None and not self.custom_scheduler:
            data["scheduler"] = self.scheduler.state_dict()
        data.update(extra)
        bad = first_non_finite(data)  # on every process, so that all of them stop together
        if bad is not None:
            raise NonFiniteStateError(f"{bad} holds NaN or Inf at iteration {extra.get('iteration', '?')}: "
                                      f"checkpoint {name} was not written and the previous one is kept")
        if not self.save_dir or not self.save_to_disk:
            return None
        save_file = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", save_file)
        self._write_atomically(save_file, lambda tmp: torch.save(data, tmp))
        self.tag_last_checkpoint(save_file)
        return save_file

    def restore_final(self, name: str = "model_final") -> Optional[str]:
        """Write a missing ``<name>.pth`` as a copy of the checkpoint ``last_checkpoint`` names, and point
        ``last_checkpoint`` at it; return its path (None when it exists, or nothing is saved here).

        For a run stopped inside the write of its final checkpoint (SIGKILL, a full disk) after the
        periodic checkpoint of the same, last iteration: the trainer writes both from the same state,
        so the copy is the file the finished run would have left.
        """
        if not self.save_dir or not self.save_to_disk:
            return None
        final = os.path.join(self.save_dir, f"{name}.pth")
        last = self.get_checkpoint_file()
        if os.path.isfile(final) or not last:
            return None
        self.logger.warning("%s is missing (the run stopped while writing it); writing it from %s, the "
                            "checkpoint of the same iteration", final, last)
        self._write_atomically(final, lambda tmp: shutil.copyfile(last, tmp))
        self.tag_last_checkpoint(final)
        return final

    def _write_atomically(self, path: str, write: Callable[[str], Any]) -> None:
        """``write(tmp)`` then rename to ``path``; an OSError (a full disk) becomes a CheckpointWriteError
        that names the checkpoint still intact."""
        try:
            with atomic_path(path) as tmp:
                write(tmp)
        except OSError as err:
            raise CheckpointWriteError(err.errno, f"Could not write checkpoint {path} ({err}); "
                                                  f"{self._last_saved()} is intact") from err

    def _last_saved(self) -> str:
        """What ``last_checkpoint`` names now, for error messages."""
        try:
            return self.get_checkpoint_file() or "no previous checkpoint"
        except CheckpointLoadError:
            return "no previous checkpoint"

    def tag_last_checkpoint(self, last_filename: str) -> None:
        """Record ``last_filename`` in ``last_checkpoint``, relative to ``save_dir``."""
        relative = os.path.relpath(os.path.abspath(last_filename), os.path.abspath(self.save_dir))
        with atomic_path(os.path.join(self.save_dir, LAST_CHECKPOINT)) as tmp, open(tmp, "w") as f:
            f.write(relative)

    # ----------------------------------------------------------------- loading
    def has_checkpoint(self) -> bool:
        return bool(self.save_dir) and os.path.exists(os.path.join(self.save_dir, LAST_CHECKPOINT))

    def get_checkpoint_file(self) -> str:
        """The file named by ``last_checkpoint``, or "" when there is none.

        A relative name is looked up in ``save_dir`` first, then (as the benchmark
        wrote it) relative to the working directory. An absolute path that no longer
        exists falls back to its file name inside ``save_dir`` (a moved output folder).
        """
        try:
            with open(os.path.join(self.save_dir, LAST_CHECKPOINT)) as f:
                recorded = f.read().strip()
        except OSError:
            return ""
        if not recorded:
            return ""
        if os.path.isabs(recorded):
            candidates = [recorded]
        else:
            candidates = [os.path.join(self.save_dir, recorded), recorded]
        candidates.append(os.path.join(self.save_dir, os.path.basename(recorded)))
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise CheckpointLoadError(f"{os.path.join(self.save_dir, LAST_CHECKPOINT)} names {recorded!r}, but none "
                                  f"of {candidates} exists")

    def load(self, f: Optional[str] = None, with_optim: bool = True, update_schedule: bool = False,
             load_mapping: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """Load weights (and optimizer / scheduler state) and return the file's extra entries.

        As in the benchmark, a ``last_checkpoint`` in ``save_dir`` takes precedence
        over ``f``. Without either, nothing is loaded and ``{}`` is returned.
        ``update_schedule`` only moves the scheduler to the saved iteration instead
        of restoring its state.
        """
        if self.has_checkpoint():
            resume_file = self.get_checkpoint_file()
            if f and os.path.abspath(f) != os.path.abspath(resume_file):
                self.logger.info("Resuming from %s (last_checkpoint takes precedence over %s)", resume_file, f)
            f = resume_file
        if not f:
            self.logger.info("No checkpoint found. Initializing model from scratch")
            return {}
        self.logger.info("Loading checkpoint from %s", f)
        checkpoint = self._load_file(f)
        self.last_load_report = load_state_dict(unwrap_model(self.model), checkpoint.pop("model"), load_mapping)
        optimizer_state = checkpoint.pop("optimizer", None)
        scheduler_state = checkpoint.pop("scheduler", None)
        if with_optim:
            if optimizer_state is not None and self.optimizer is not None:
                self.logger.info("Loading optimizer from %s", f)
                try:
                    self.optimizer.load_state_dict(optimizer_state)
                except ValueError as err:
                    raise CheckpointLoadError(f"The optimizer state in {f} does not fit this optimizer: {err}") from err
            if scheduler_state is not None and self.scheduler is not None and not self.custom_scheduler:
                if update_schedule:
                    self.scheduler.last_epoch = checkpoint.get("iteration", self.scheduler.last_epoch)
                else:
                    self.logger.info("Loading scheduler from %s", f)
                    self.scheduler.load_state_dict(scheduler_state)
        return checkpoint

    def _load_file(self, f: str) -> Dict[str, Any]:
        return load_checkpoint_file(f)


class DetectronCheckpointer(Checkpointer):
    """The benchmark's checkpointer for detection models.

    Local ``.pth`` files only: the benchmark's ``catalog://`` names, URLs and
    Caffe2 ``.pkl`` files are rejected with an error saying what to pass instead.
    """

    def _load_file(self, f: str) -> Dict[str, Any]:
        if f.startswith("catalog://") or "://" in f:
            raise CheckpointLoadError(f"{f} is not a local file: downloads and catalog names are not supported; "
                                      f"point MODEL.WEIGHT / PRETRAINED_DETECTOR_CKPT at a local .pth file")
        if f.endswith(".pkl"):
            raise CheckpointLoadError(f"{f} is a Caffe2 .pkl file, which is not supported; use a PyTorch .pth "
                                      f"checkpoint")
        return super()._load_file(f)
