"""LS-KD as a training framework, registered as "LSKD" (settings ``LSKD.*``, LSKD.md).

The relation loss (``loss_rel``) becomes the LS-KD loss against the fused target
``s = (1 - alpha) onehot + alpha LSD``; the LSD comes from a frozen snapshot of the
relation head (iterative) or from an auxiliary copy of the predictor's final logit
layer(s) trained with CE alongside (synchronous, ``loss_lskd_aux``). Where LS-KD is off
(alpha 0, before the first snapshot, during the synchronous warm-up) the head's own
``loss_rel`` is left as it is, so those iterations are plain CE bit for bit. The
relation loss's class weights (a stacked re-weighting framework or HML) become per-pair
weights of the LS-KD loss (``loss.py``).
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F

from maskrcnn_benchmark.engine.framework import TRAINING_FRAMEWORKS, TrainingFramework
from maskrcnn_benchmark.engine.trainer import StepOutcome, TrainHook
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch, ROIRelationHead
from maskrcnn_benchmark.utils.checkpoint import unwrap_model
from maskrcnn_benchmark.utils.finite import NonFiniteStateError

from .aux_head import AuxiliaryLogitHead, LayerInputs
from .config import LSKDSettings
from .loss import lskd_relation_loss, pair_alpha
from .targets import hard_targets
from .teacher import SnapshotTeacher

REPORT_FILE = "lskd_report.json"


class LSKDProgress:
    """What a resumed run needs: the last finished iteration, the refresh iterations and the
    snapshot's weights (kept in the checkpoints as the framework's state)."""

    def __init__(self) -> None:
        self.iteration = 0
        self.refreshes: List[int] = []
        self.teacher: Optional[SnapshotTeacher] = None

    def state_dict(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {"iteration": self.iteration, "refreshes": list(self.refreshes)}
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.refreshes = [int(i) for i in state["refreshes"]]
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])


class _LSKDHook(TrainHook):
    def __init__(self, framework: "LSKDFramework") -> None:
        self.framework = framework

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        self.framework.finish_step(iteration, outcome)


@TRAINING_FRAMEWORKS.register("LSKD")
class LSKDFramework(TrainingFramework):
    """Label Semantic Knowledge Distillation (Li et al., TCSVT 2024), as LSKD.md reconstructs it.

    Args:
        settings: the ``LSKD.*`` keys.
        max_iter: SOLVER.MAX_ITER (the linear alpha schedule's T).
        refresh_period: iterations between snapshots (iterative), one epoch when LSKD.REFRESH_PERIOD is 0.
    """

    claims = frozenset({"relation_loss"})
    report_file = REPORT_FILE

    def __init__(self, settings: LSKDSettings, max_iter: int, refresh_period: int) -> None:
        self.settings = settings
        self.max_iter = max_iter
        self.refresh_period = refresh_period
        self.progress = LSKDProgress()
        self.inputs = LayerInputs()
        self.head: Optional[ROIRelationHead] = None

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "LSKDFramework":
        if cfg.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS:
            raise ValueError("LS-KD replaces the relation loss: it cannot be combined with "
                             "MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS True")
        settings = LSKDSettings.from_config(cfg)
        if settings.multi_gt == "uniform_multi_hot" and not cfg.DATASETS.KEEP_ALL_PREDICATES:
            raise ValueError("LSKD.MULTI_GT uniform_multi_hot needs DATASETS.KEEP_ALL_PREDICATES True")
        period = settings.refresh_period
        if settings.strategy == "iterative" and period == 0:
            period = epoch_iterations(cfg)
        return cls(settings, int(cfg.SOLVER.MAX_ITER), period)

    # ------------------------------------------------------------------ interface
    def prepare(self, model: torch.nn.Module) -> None:
        """Bind the head; iterative: a frozen snapshot (filled at the first refresh); synchronous: the
        auxiliary head under ``framework_modules[name]`` (kept when present) and the hooks feeding it."""
        head = unwrap_model(model).roi_heads.relation
        self.head = head
        self.progress = LSKDProgress()
        if self.settings.strategy == "iterative":
            self.progress.teacher = SnapshotTeacher.from_head(head)
            return
        if self.name not in head.framework_modules:
            head.framework_modules[self.name] = AuxiliaryLogitHead.from_predictor(head.predictor)
        self.inputs.attach(head.predictor, head.framework_modules[self.name].names)

    def relation_losses(self, batch: RelationBatch, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        iteration = self.progress.iteration + 1
        labels = torch.cat(list(batch.rel_labels), dim=0).long()
        teacher_logits = None
        if self.settings.strategy == "synchronous":
            aux_logits = self._aux_logits()
            self.check_teacher_logits(aux_logits, batch, iteration)
            losses["loss_lskd_aux"] = self.settings.aux_loss_weight * F.cross_entropy(aux_logits.float(), labels)
            teacher_logits = aux_logits
        alpha = self.alpha_at(iteration)
        if not self.distilling(iteration) or alpha == 0.0:
            return losses
        if teacher_logits is None:
            teacher_logits = self.progress.teacher(batch)
            self.check_teacher_logits(teacher_logits, batch, iteration)
        logits = torch.cat(list(batch.rel_logits), dim=0)
        hard = hard_targets(batch, logits.shape[1], self.settings.multi_gt)
        s = self.settings
        losses["loss_rel"] = lskd_relation_loss(logits, hard, teacher_logits, pair_alpha(labels, alpha, s.apply_to),
                                                s.tau, s.lsd_support, s.kd_form,
                                                self.head.loss_evaluator.rel_class_weights)
        return losses

    def check_teacher_logits(self, teacher_logits: torch.Tensor, batch: RelationBatch, iteration: int) -> None:
        """Raise :class:`NonFiniteStateError` when the logits the soft targets come from hold NaN / Inf while
        the student's own logits are finite: the snapshot's or the auxiliary head's state went non-finite.
        (Non-finite inputs, which reach the student too, are left to the trainer's loss check.)"""
        if bool(torch.isfinite(teacher_logits).all()) or \
                not all(bool(torch.isfinite(logits).all()) for logits in batch.rel_logits):
            return
        if self.settings.strategy == "iterative":
            refreshed = self.progress.refreshes[-1] if self.progress.refreshes else None
            source = f"the snapshot teacher (lskd.teacher, refreshed at iteration {refreshed})"
        else:
            source = f"the auxiliary head (roi_heads.relation.framework_modules.{self.name})"
        raise NonFiniteStateError(f"LS-KD soft targets hold NaN or Inf at iteration {iteration}: the logits of "
                                  f"{source} are not finite, the student's are. Training stopped before the "
                                  f"step; nothing of this iteration was saved")

    def train_hooks(self) -> List[TrainHook]:
        return [_LSKDHook(self)]

    def state(self) -> Dict[str, Any]:
        return {"lskd": self.progress}

    # ------------------------------------------------------------------ schedule
    def alpha_at(self, iteration: int) -> float:
        """alpha at ``iteration`` (1-based): constant, or ``alpha * iteration / max_iter`` (linear)."""
        if self.settings.alpha_schedule == "linear":
            return self.settings.alpha * min(iteration / self.max_iter, 1.0)
        return self.settings.alpha

    def distilling(self, iteration: int) -> bool:
        """Whether ``iteration`` uses soft targets: after the first snapshot (iterative) or the warm-up."""
        if self.settings.strategy == "iterative":
            return bool(self.progress.refreshes)
        return iteration > self.settings.warmup_iters

    def finish_step(self, iteration: int, outcome: StepOutcome) -> None:
        """After each optimizer step: count it, refresh the snapshot every ``refresh_period`` iterations
        (not at the last one, which no step would use); the runner writes ``report`` at the end."""
        self.progress.iteration = iteration
        if (self.progress.teacher is not None and iteration % self.refresh_period == 0
                and iteration < self.max_iter):
            self.progress.teacher.refresh(self.head)
            self.progress.refreshes.append(iteration)

    def report(self, outcome: StepOutcome) -> Dict[str, Any]:
        """Settings, when distillation ran, and the last iteration's loss terms (mean over ranks)."""
        synchronous = self.settings.strategy == "synchronous"
        first = (self.settings.warmup_iters + 1 if synchronous else
                 (self.progress.refreshes[0] + 1 if self.progress.refreshes else None))
        return {"framework": self.name, "settings": asdict(self.settings), "max_iter": self.max_iter,
                "refresh_period": None if synchronous else self.refresh_period,
                "refresh_iterations": list(self.progress.refreshes),
                "first_distillation_iteration": first if first is not None and first <= self.max_iter else None,
                "final_iteration": self.progress.iteration, "final_losses": dict(outcome.losses)}

    def _aux_logits(self) -> torch.Tensor:
        inputs = self.inputs.take()
        if self.settings.aux_detach_features:
            inputs = {name: value.detach() for name, value in inputs.items()}
        return self.head.framework_modules[self.name](inputs)


def epoch_iterations(cfg) -> int:
    """Iterations of one pass over the training images: ceil(images / SOLVER.IMS_PER_BATCH)."""
    from maskrcnn_benchmark.data.build import build_dataset
    images = sum(len(dataset) for dataset in build_dataset(cfg, cfg.DATASETS.TRAIN))
    return max(1, math.ceil(images / cfg.SOLVER.IMS_PER_BATCH))
