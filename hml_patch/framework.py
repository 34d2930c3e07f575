"""HML as a training framework: the benchmark's ``TrainingFramework`` interface, registered as "HML".

``MODEL.ROI_RELATION_HEAD.HML True`` (or "HML" in ``MODEL.ROI_RELATION_HEAD.FRAMEWORKS``)
selects it. HML owns the training plan (one run per tree layer, ``stages.run_stages``)
and the relation loss's class weights (class-balanced CE over each stage's predicates).
It trains the configured predictor itself, so an HML checkpoint has a plain model's keys.
During a stage after the first, the stage runner sets :class:`StageTerms`, whose CR and
MR terms ``relation_losses`` adds to the head's training losses.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.engine.framework import TRAINING_FRAMEWORKS, FrameworkRunner, TrainingFramework
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch

from .config import HMLSettings
from .importance import ImportanceState

CRLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TeacherLogits = Callable[[RelationBatch], Tuple[torch.Tensor, ...]]


class StageTerms:
    """CR and MR of one HML stage k > 1 (HML.md sections 5-7), already weighted.

    Args:
        teacher: the frozen stage k-1 relation head's per-image logits for the batch's pairs
            (a ``RelationTeacher`` or its ``TeacherLogitCache``).
        cr_loss: ``(student_logits, teacher_logits) -> scalar``, rows = the batch's pairs.
        cr_weight: its factor (alpha in paper mode).
        importance: the state holding stage k-1's parameters, Fisher and Omega, bound to
            the student's MR parameters.
        mr_weight, mr_distance: the MR factor (beta in paper mode) and "l2" / "abs".
        fused_mr: ``loss_mr`` is a detached value whose gradient the importance hook adds after
            the backward (``HML.FUSED_MR_GRAD``; equal up to float rounding), else the autograd penalty.
    """

    def __init__(self, teacher: TeacherLogits, cr_loss: CRLoss, cr_weight: float, importance: ImportanceState,
                 mr_weight: float, mr_distance: str, fused_mr: bool = False) -> None:
        self.teacher = teacher
        self.cr_loss = cr_loss
        self.cr_weight = cr_weight
        self.importance = importance
        self.mr_weight = mr_weight
        self.mr_distance = mr_distance
        self.fused_mr = fused_mr

    def __call__(self, batch: RelationBatch) -> Dict[str, torch.Tensor]:
        student = torch.cat(list(batch.rel_logits), dim=0)
        teacher = torch.cat(self.teacher(batch), dim=0)
        mr = self.importance.fused_mr_penalty if self.fused_mr else self.importance.mr_penalty
        return {"loss_cr": self.cr_weight * self.cr_loss(student, teacher.to(student.dtype)),
                "loss_mr": mr(self.mr_weight, self.mr_distance)}


def mr_parameters(predictor: nn.Module, prefixes: Sequence[str]) -> List[Tuple[str, nn.Parameter]]:
    """The predictor's parameters whose names (relative to the predictor) start with one of ``prefixes``."""
    return [(n, p) for n, p in predictor.named_parameters() if n.startswith(tuple(prefixes))]


@TRAINING_FRAMEWORKS.register("HML")
class HMLFramework(TrainingFramework):
    """Hierarchical Memory Learning: stages over the predicate tree's layers, with CR and MR after the first.

    ``stage_terms`` is set by the stage runner for stages k > 1 and cleared after each;
    ``result`` holds the last run's ``HMLResult``.
    """

    claims = frozenset({"stages", "class_weights"})

    def __init__(self, settings: HMLSettings) -> None:
        self.settings = settings
        self.stage_terms: Optional[StageTerms] = None
        self.result: Optional[Any] = None

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "HMLFramework":
        return cls(HMLSettings.from_config(cfg))

    def relation_losses(self, batch: RelationBatch, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The head's losses plus the current stage's CR and MR terms (none in stage 1)."""
        if self.stage_terms is not None:
            losses.update(self.stage_terms(batch))
        return losses

    def run(self, runner: FrameworkRunner) -> nn.Module:
        from .stages import run_stages
        self.result = run_stages(self, runner)
        return self.result.model
