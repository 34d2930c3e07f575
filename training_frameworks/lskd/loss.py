"""LS-KD's soft targets and relation losses (LSKD.md section 2.2), as plain functions of tensors.

Rows are the batch's sampled pairs, columns the C + 1 predicate logits (0 = background).
All arithmetic is in float32 (LSKD.md section 6.9). With per-pair weights ``w`` (the relation
loss's class weights looked up by the hard target, ``w_i = sum_c e_ic weight_c``, i.e. ``weight[y_i]``
for a one-hot target) every loss is PyTorch's weighted mean ``sum_i w_i l_i / sum_i w_i``;
without them it is the plain mean, as the benchmark's ``F.cross_entropy``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def label_semantic_distribution(teacher_logits: torch.Tensor, tau: float, support: str = "all") -> torch.Tensor:
    """``q = softmax(t / tau)`` over all classes (``support`` "all") or over the predicates 1..C only,
    background 0 (``"fg_only"``, the renormalised 51-way softmax computed stably)."""
    logits = teacher_logits.detach().float() / tau
    if support == "all":
        return F.softmax(logits, dim=-1)
    if support == "fg_only":
        return torch.cat([logits.new_zeros(logits.shape[0], 1), F.softmax(logits[:, 1:], dim=-1)], dim=-1)
    raise ValueError(f"support should be 'all' or 'fg_only', got {support!r}")


def pair_alpha(labels: torch.Tensor, alpha: float, apply_to: str = "all") -> torch.Tensor:
    """Per-pair fusion weight: ``alpha`` on the pairs ``apply_to`` names ("all", "pos" = label > 0,
    "neg" = label 0), 0 elsewhere."""
    if apply_to == "all":
        mask = torch.ones_like(labels, dtype=torch.bool)
    elif apply_to == "pos":
        mask = labels > 0
    elif apply_to == "neg":
        mask = labels == 0
    else:
        raise ValueError(f"apply_to should be 'all', 'pos' or 'neg', got {apply_to!r}")
    return mask.float() * alpha


def fuse_targets(hard: torch.Tensor, lsd: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """``s_i = (1 - alpha_i) e_i + alpha_i q_i``: a distribution per row when ``e`` and ``q`` are."""
    alphas = alphas[:, None]
    return (1.0 - alphas) * hard + alphas * lsd


def _weighted_mean(per_pair: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    if weights is None:
        return per_pair.mean()
    return (weights * per_pair).sum() / weights.sum()


def pair_weights(hard: torch.Tensor, class_weights: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``w_i = sum_c e_ic class_weights_c`` (``class_weights[y_i]`` for one-hot targets), or None."""
    if class_weights is None:
        return None
    return hard @ class_weights.float()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                       weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean (or weighted mean) over rows of ``-sum_c s_c log softmax(z)_c``."""
    per_pair = -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)
    return _weighted_mean(per_pair, weights)


def hinton_loss(logits: torch.Tensor, hard: torch.Tensor, lsd: torch.Tensor, alphas: torch.Tensor, tau: float,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean of ``(1 - a_i) CE(e_i, p_i) + a_i tau^2 KL(q_i || softmax(z_i / tau))``, ``q`` at temperature tau."""
    logits = logits.float()
    ce = -(hard * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    kl = (torch.xlogy(lsd, lsd) - lsd * F.log_softmax(logits / tau, dim=-1)).sum(dim=-1)
    return _weighted_mean((1.0 - alphas) * ce + alphas * (tau ** 2) * kl, weights)


def lskd_relation_loss(logits: torch.Tensor, hard: torch.Tensor, teacher_logits: torch.Tensor,
                       alphas: torch.Tensor, tau: float, support: str = "all", kd_form: str = "soft_ce",
                       class_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The LS-KD relation loss of student ``logits`` [R, C] against hard targets ``hard`` [R, C] (rows
    sum to 1) and the teacher's ``teacher_logits`` (no gradient reaches them)."""
    lsd = label_semantic_distribution(teacher_logits, tau, support)
    weights = pair_weights(hard, class_weights)
    if kd_form == "soft_ce":
        return soft_cross_entropy(logits, fuse_targets(hard, lsd, alphas), weights)
    if kd_form == "hinton":
        return hinton_loss(logits, hard, lsd, alphas, tau, weights)
    raise ValueError(f"kd_form should be 'soft_ce' or 'hinton', got {kd_form!r}")
