"""``HMLPredictor``: the configured relation predictor, trained by HML's stages.

Registered in ``ROI_RELATION_PREDICTOR``; ``MODEL.ROI_RELATION_HEAD.HML True`` puts it
around ``MODEL.ROI_RELATION_HEAD.PREDICTOR``. It predicts exactly as the wrapped
predictor and stores the same parameter names (the ``student`` level is hidden in
``state_dict`` and restored on load), so an HML checkpoint loads into a plain model
and back. During a stage after the first, the stage runner attaches
:class:`StageTerms`, whose CR and MR terms the relation head adds to the losses
through the predictor's ``batch_losses`` hook.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.modeling.registry import ROI_RELATION_PREDICTOR
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch

from .importance import ImportanceState

STUDENT = "student."
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
    """

    def __init__(self, teacher: TeacherLogits, cr_loss: CRLoss, cr_weight: float, importance: ImportanceState,
                 mr_weight: float, mr_distance: str) -> None:
        self.teacher = teacher
        self.cr_loss = cr_loss
        self.cr_weight = cr_weight
        self.importance = importance
        self.mr_weight = mr_weight
        self.mr_distance = mr_distance

    def __call__(self, batch: RelationBatch) -> Dict[str, torch.Tensor]:
        student = torch.cat(list(batch.rel_logits), dim=0)
        teacher = torch.cat(self.teacher(batch), dim=0)
        return {"loss_cr": self.cr_weight * self.cr_loss(student, teacher.to(student.dtype)),
                "loss_mr": self.importance.mr_penalty(self.mr_weight, self.mr_distance)}


class HMLPredictor(nn.Module):
    """Wraps ``student`` (any relation predictor) without changing its inputs, outputs or parameter names."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.stage_terms: Optional[StageTerms] = None
        self.register_state_dict_post_hook(_hide_student_level)
        self.register_load_state_dict_pre_hook(_restore_student_level)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics: Mapping[str, Any]) -> "HMLPredictor":
        """Wrap the predictor named by MODEL.ROI_RELATION_HEAD.PREDICTOR."""
        name = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
        inner = ROI_RELATION_PREDICTOR[name]
        if inner is cls:
            raise ValueError("MODEL.ROI_RELATION_HEAD.PREDICTOR must name the predictor HML trains, not HMLPredictor")
        return cls(inner.from_config(cfg, in_channels, statistics))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.student(*args, **kwargs)

    def attach(self, stage_terms: Optional[StageTerms]) -> None:
        """Use ``stage_terms`` for the next training batches (None: plain training, as in stage 1)."""
        self.stage_terms = stage_terms

    def batch_losses(self, batch: RelationBatch) -> Dict[str, torch.Tensor]:
        """The attached stage's CR and MR terms (training only)."""
        if not self.training or self.stage_terms is None:
            return {}
        return self.stage_terms(batch)

    def named_student_parameters(self, prefixes: Sequence[str]) -> list:
        """The student's parameters whose names (relative to the predictor) start with one of ``prefixes``."""
        return [(n, p) for n, p in self.student.named_parameters() if n.startswith(tuple(prefixes))]


def _hide_student_level(module: nn.Module, state_dict: Dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + STUDENT)]:
        state_dict[prefix + key[len(prefix) + len(STUDENT):]] = state_dict.pop(key)


def _restore_student_level(module: nn.Module, state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + STUDENT)]:
        state_dict[prefix + STUDENT + key[len(prefix):]] = state_dict.pop(key)


ROI_RELATION_PREDICTOR.register("HMLPredictor", HMLPredictor)
