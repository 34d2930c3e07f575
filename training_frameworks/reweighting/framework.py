"""The re-weighting frameworks and their config group.

Each sets the relation loss's class weights once, before training; the loss is the
benchmark's weighted cross-entropy (PyTorch's weighted mean). Counts are the training
relations per predicate of the dataset statistics (``fg_matrix``, the training split as
the loader filters it). ``REWEIGHT.CB_GAMMA 0.999`` and ``REWEIGHT.BG_WEIGHT 1.0``
match HML's class-balanced CE, so "ClassBalancedCE" has the formula of HML's one-stage ``list:*``
loss; HML counts the annotated relations of its stage's images instead.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch

from maskrcnn_benchmark.config.config_node import CfgNode as CN
from maskrcnn_benchmark.engine.framework import TRAINING_FRAMEWORKS, TrainingFramework
from maskrcnn_benchmark.engine.trainer import StepOutcome
from maskrcnn_benchmark.modeling.roi_heads.relation_head.loss import (class_balanced_weights,
                                                                      inverse_frequency_weights)
from maskrcnn_benchmark.utils.checkpoint import unwrap_model


def add_reweight_config(cfg: CN) -> None:
    """Add the ``REWEIGHT`` group (no-op when present)."""
    if "REWEIGHT" in cfg:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.REWEIGHT = CN()
    cfg.REWEIGHT.CB_GAMMA = 0.999  # ClassBalancedCE: effective-number gamma (Cui et al.), in [0, 1)
    cfg.REWEIGHT.BG_WEIGHT = 1.0  # background weight relative to an average predicate (both frameworks)
    if was_frozen:
        cfg.freeze()


def training_counts(statistics: Mapping[str, Any]) -> torch.Tensor:
    """Training relations per predicate id (background 0 set to 0) from the statistics' ``fg_matrix``."""
    counts = torch.as_tensor(statistics["fg_matrix"]).sum(dim=(0, 1)).to(torch.float64)
    counts[0] = 0
    return counts


class _Reweighting(TrainingFramework):
    """Sets ``weights`` as the relation loss's class weights of every model it prepares."""

    claims = frozenset({"class_weights"})
    report_file = "reweighting_report.json"

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def report(self, outcome: StepOutcome) -> Dict[str, Any]:
        """The class weights (index = predicate id, 0 = background) and the last iteration's loss terms."""
        return {"framework": self.name, "class_weights": [float(w) for w in self.weights],
                "final_losses": dict(outcome.losses)}

    def prepare(self, model: torch.nn.Module) -> None:
        unwrap_model(model).roi_heads.relation.loss_evaluator.rel_class_weights = self.weights

    @staticmethod
    def _predicates(counts: torch.Tensor) -> List[int]:
        return list(range(1, counts.numel()))


@TRAINING_FRAMEWORKS.register("ClassBalancedCE")
class ClassBalancedCE(_Reweighting):
    """Class-balanced cross-entropy over all predicates (effective number of samples)."""

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "ClassBalancedCE":
        counts = training_counts(statistics)
        return cls(class_balanced_weights(counts, cls._predicates(counts), cfg.REWEIGHT.CB_GAMMA,
                                          cfg.REWEIGHT.BG_WEIGHT))


@TRAINING_FRAMEWORKS.register("InverseFrequencyCE")
class InverseFrequencyCE(_Reweighting):
    """Inverse-frequency cross-entropy over all predicates."""

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "InverseFrequencyCE":
        counts = training_counts(statistics)
        return cls(inverse_frequency_weights(counts, cls._predicates(counts), cfg.REWEIGHT.BG_WEIGHT))
