"""HML's stage losses (HML.md sections 5-6): Concept Reconstruction, and the weights alpha / beta
that combine it and Model Reconstruction with the stage's class-balanced CE (whose weights,
``class_balanced_weights``, live with the benchmark's relation loss).

Both the paper's definitions and the authors' released behaviour ("official") are here, so
the stage runner only chooses between them.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import torch
import torch.nn.functional as F

from maskrcnn_benchmark.modeling.roi_heads.relation_head.loss import class_balanced_weights

__all__ = ["class_balanced_weights", "concept_reconstruction_loss", "official_concept_reconstruction_loss",
           "stage_loss_weights"]


def stage_loss_weights(num_old: int, num_new: int, lam: float) -> Tuple[float, float]:
    """``(alpha, beta)`` of Eq. 3-4: ``alpha = N_old / N_new``, ``beta = lam (N_new + N_old) / N_new``."""
    if num_new <= 0:
        raise ValueError(f"a stage needs at least one new class, got {num_new}")
    return num_old / num_new, lam * (num_new + num_old) / num_new


def concept_reconstruction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                                old_classes: Optional[Iterable[int]] = None, temperature: float = 1.0,
                                distance: str = "l2") -> torch.Tensor:
    """Paper Eq. 5: ``(1/N) sum_n sum_{j in old} d(softmax(x_n / T)_j, softmax(z_n / T)_j)``.

    ``student_logits`` / ``teacher_logits`` are ``[N, C]`` relation logits for the SAME
    N proposals (same image, boxes and pairs); the teacher's carry no gradient.
    ``old_classes`` None compares all C columns. ``distance`` "l2" squares the
    difference (the paper), "l1" takes its absolute value.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} "
                         f"vs {tuple(teacher_logits.shape)}; they must score the same relation pairs")
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    diff = F.softmax(student_logits / temperature, dim=1) - F.softmax(teacher_logits.detach() / temperature, dim=1)
    if old_classes is not None:
        diff = diff[:, torch.as_tensor(sorted(set(int(c) for c in old_classes)), dtype=torch.long,
                                       device=diff.device)]
    if distance == "l2":
        per_entry = diff.pow(2)
    elif distance == "l1":
        per_entry = diff.abs()
    else:
        raise ValueError(f"distance must be 'l2' or 'l1', got {distance!r}")
    return per_entry.sum() / student_logits.shape[0]


def official_concept_reconstruction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor
                                         ) -> torch.Tensor:
    """The authors' CR: ``0.5 * mean|softmax(z) - softmax(x)| * N`` over all C columns (background
    included), i.e. ``0.5 * sum_{n,j} |dp| / C``; no temperature, no old-class mask."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} "
                         f"vs {tuple(teacher_logits.shape)}; they must score the same relation pairs")
    diff = F.softmax(student_logits, dim=1) - F.softmax(teacher_logits.detach(), dim=1)
    return 0.5 * diff.abs().sum() / student_logits.shape[1]
