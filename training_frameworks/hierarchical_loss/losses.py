"""Layer probabilities and the hierarchical predicate loss of HIERARCHY.md D2 (explicit arguments only).

Both score forms give ``log P1`` over the layer-1 nodes and ``log P2`` over the
layer-2 children (each within its parent's child softmax); the loss then does
not care which form produced them.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .layout import TreeLayout


def masked_logsumexp(values: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """(N, M): logsumexp of ``values`` (N, D) over the columns each row of ``members`` (M, D, bool) selects."""
    masked = values[:, None, :].masked_fill(~members.to(values.device)[None], float("-inf"))
    return torch.logsumexp(masked, dim=-1)


def group_log_softmax(child_logits: torch.Tensor, layout: TreeLayout) -> torch.Tensor:
    """(N, K) ``log P2``: each child's log-softmax within its parent's children."""
    log_z = masked_logsumexp(child_logits, layout.group_members())
    return child_logits - log_z[:, layout.child_group.to(child_logits.device)]


def marginal_log_probs(logits: torch.Tensor, layout: TreeLayout) -> Tuple[torch.Tensor, torch.Tensor]:
    """D2 (b) from the flat (N, R) logits: ``log P1(c)`` = logsumexp over ``{c} U ch(c)`` minus logsumexp
    over all, and ``log P2(f|c)`` = log-softmax of the children's logits within ``ch(c)``."""
    log_p1 = masked_logsumexp(logits, layout.node_members) - torch.logsumexp(logits, dim=-1, keepdim=True)
    log_p2 = group_log_softmax(logits[:, layout.child_ids.to(logits.device)], layout)
    return log_p1, log_p2


def hgr_layer_weights(layout: TreeLayout) -> Tuple[float, float]:
    """HGR-Net's simplified rule (HIERARCHY.md A8): w_j = (1/N_j) / (1/N_1 + 1/N_2), with N_1 = |C| + 1
    (background is a layer-1 node here) and N_2 = |F|."""
    n1 = layout.num_nodes
    n2 = layout.num_predicates - n1
    if n2 == 0:
        return 1.0, 0.0
    total = 1.0 / n1 + 1.0 / n2
    return (1.0 / n1) / total, (1.0 / n2) / total


def layer_class_balanced_weights(counts: torch.Tensor, layout: TreeLayout, gamma: float
                                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Effective-number weights (Cui et al.) inside each layer, each rescaled to mean 1 over its foreground terms.

    A layer-1 node counts the training relations of its whole set ``{c} U ch(c)`` (every one of them
    gives that node's term); a child counts its own. Background keeps weight 1 (an average node).
    Returns ``(node_weights (N1,), child_weights (K,))``.
    """
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma}")
    counts = torch.as_tensor(counts, dtype=torch.float64)

    def balanced(n: torch.Tensor) -> torch.Tensor:
        raw = (1.0 - gamma) / (1.0 - torch.pow(torch.tensor(gamma, dtype=torch.float64), n.clamp(min=1.0)))
        return raw / raw.mean()

    node_counts = (layout.node_members.to(torch.float64) * counts[None, :]).sum(dim=1)
    node_weights = torch.ones(layout.num_nodes, dtype=torch.float64)
    node_weights[1:] = balanced(node_counts[1:])
    child_weights = balanced(counts[layout.child_ids]) if layout.num_children else counts.new_zeros(0)
    return node_weights.float(), child_weights.float()


def hierarchical_loss(log_p1: torch.Tensor, log_p2: torch.Tensor, labels: torch.Tensor, layout: TreeLayout,
                      layer_weights: Tuple[float, float], class_weights: Optional[torch.Tensor] = None,
                      node_weights: Optional[torch.Tensor] = None, child_weights: Optional[torch.Tensor] = None
                      ) -> torch.Tensor:
    """Weighted mean over pairs of the D2 per-sample loss.

    Per pair with label ``g``: ``w1 a1[node(g)] (-log P1(node(g)))`` plus, only when ``g`` is a fine
    predicate with a P2 term, ``w2 a2[g] (-log P2(g | parent))``. So a coarse label or background gives the
    layer-1 term alone. ``a1`` / ``a2`` are the optional in-layer class weights (default 1); the mean is
    over pairs, each weighted by ``class_weights[g]`` (R,) when given: sum(w[g] L) / sum(w[g]), PyTorch's
    weighted mean, so another framework's per-predicate weights act as in the weighted cross-entropy.
    """
    w1, w2 = layer_weights
    labels = labels.long()
    device = log_p1.device
    nodes = layout.node_of.to(device)[labels]
    term1 = -log_p1.gather(1, nodes[:, None]).squeeze(1)
    if node_weights is not None:
        term1 = term1 * node_weights.to(log_p1)[nodes]
    loss = w1 * term1
    pos = layout.child_pos.to(device)[labels]
    has_p2 = pos >= 0
    if w2 != 0 and bool(has_p2.any()):
        rows = has_p2.nonzero().squeeze(1)
        term2 = -log_p2[rows, pos[rows]]
        if child_weights is not None:
            term2 = term2 * child_weights.to(log_p2)[pos[rows]]
        loss = loss.index_add(0, rows, w2 * term2)
    if class_weights is None:
        return loss.mean()
    weights = class_weights.to(loss)[labels]
    total = weights.sum()
    return (weights * loss).sum() / torch.where(total > 0, total, torch.ones_like(total))
