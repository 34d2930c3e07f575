"""Mean energies of the GT and the sampled graphs per iteration, for the run report (EBM.ENERGY_LOG)."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List

import torch

from maskrcnn_benchmark.engine.trainer import StepOutcome, TrainHook
from maskrcnn_benchmark.utils.comm import is_main_process
from maskrcnn_benchmark.utils.finite import NonFiniteStateError


class EnergyLog(TrainHook):
    """Records this process's mean E+ and E- of each iteration (``record``), appends them after the
    step and rewrites ``path`` (JSON: iteration, e_pos, e_neg, gap = e_neg - e_pos) on the main process.
    Its history travels in checkpoints, so a resumed run continues the same file; a NaN / Inf in it
    (e.g. from the checkpoint resumed) stops training before the file is rewritten."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self.pending: List[float] = []
        self.history: Dict[str, List[float]] = {"iteration": [], "e_pos": [], "e_neg": []}
        self.finite_rows = 0  # rows of history checked finite

    def record(self, pos: torch.Tensor, neg: torch.Tensor) -> None:
        self.pending = [float(pos.detach().float().mean()), float(neg.detach().float().mean())]

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        if not self.pending:
            return
        for key, value in zip(("iteration", "e_pos", "e_neg"), [iteration] + self.pending):
            self.history[key].append(float(value))
        self.pending = []
        for key, values in self.history.items():
            if not all(math.isfinite(value) for value in values[self.finite_rows:]):
                raise NonFiniteStateError(f"ebm_energy_log.{key} holds NaN or Inf at iteration {iteration}: "
                                          f"training stopped; the energy log was not rewritten")
        self.finite_rows = len(self.history["iteration"])
        if self.path and is_main_process():
            rows = [{"iteration": int(i), "e_pos": p, "e_neg": n, "gap": n - p}
                    for i, p, n in zip(self.history["iteration"], self.history["e_pos"], self.history["e_neg"])]
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(self.path, "w") as f:
                json.dump(rows, f)

    def state_dict(self) -> Dict[str, Any]:
        return {key: torch.tensor(values, dtype=torch.float64) for key, values in self.history.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.history = {key: [float(v) for v in state[key].tolist()] for key in self.history}
        self.finite_rows = 0
