"""D3 inference: the emitted predicate per pair and a 51-column score vector the evaluator reads as it.

Per pair, c^ = argmax over the foreground layer-1 nodes of P1; the label is the
best child f^ = argmax P2(.|c^) when c^ has a child softmax and max P2 >= tau
(tau < 1; tau = 1 never refines, tau = 0 always does), else c^ itself. The rank
score is P1(c^) whichever granularity is emitted.

The written vector holds P1(c^) in the emitted label's column; every other column
holds its D3 ng score (a coarse c or background: P1(c); a child f: P1(parent) x
P2(f|parent); a lone child, which has no P2: 0), capped just below P1(c^). So the
post-processor's argmax over columns 1.. is the emitted label and its max is
P1(c^) (the triplet score is P1(c^) x the object scores).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from .layout import TreeLayout
from .losses import marginal_log_probs


def d3_labels(log_p1: torch.Tensor, log_p2: torch.Tensor, layout: TreeLayout, tau: float
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(labels (N,) predicate ids, confidence (N,) = P1(c^))`` by the D3 rule."""
    device = log_p1.device
    p1 = log_p1.exp()
    confidence, node = p1[:, 1:].max(dim=1)
    node = node + 1
    labels = layout.layer1_ids.to(device)[node]
    if layout.num_children and tau < 1.0:
        in_group = layout.child_group.to(device)[None, :] == node[:, None]
        p2 = log_p2.exp().masked_fill(~in_group, -1.0)
        best, child = p2.max(dim=1)
        refine = best >= tau
        labels = torch.where(refine, layout.child_ids.to(device)[child], labels)
    return labels, confidence


def d3_scores(log_p1: torch.Tensor, log_p2: torch.Tensor, layout: TreeLayout, tau: float) -> torch.Tensor:
    """(N, R) scores whose argmax over columns 1.. is the D3 label and whose max there is P1(c^)."""
    device = log_p1.device
    labels, confidence = d3_labels(log_p1, log_p2, layout, tau)
    p1 = log_p1.exp()
    scores = p1.new_zeros(p1.shape[0], layout.num_predicates)
    scores[:, layout.layer1_ids.to(device)] = p1
    if layout.num_children:
        scores[:, layout.child_ids.to(device)] = p1[:, layout.child_group.to(device)] * log_p2.exp()
    cap = torch.nextafter(confidence, torch.full_like(confidence, float("-inf")))
    scores = torch.minimum(scores, cap[:, None])
    return scores.scatter(1, labels[:, None], confidence[:, None])


class HierarchicalScores:
    """The post-processor's ``relation_scores``: predictor logits (N, R) -> D3 scores at threshold ``tau``.

    ``head`` is the factorised head (None for the marginal form, which reads the flat logits).
    ``tau`` may be changed between calls (the threshold tool re-scores with several).
    """

    def __init__(self, layout: TreeLayout, tau: float, head: Optional[nn.Module] = None) -> None:
        self.layout = layout
        self.tau = tau
        self.head = head

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        log_p1, log_p2 = self.head(logits) if self.head is not None else marginal_log_probs(logits, self.layout)
        return d3_scores(log_p1, log_p2, self.layout, self.tau)
