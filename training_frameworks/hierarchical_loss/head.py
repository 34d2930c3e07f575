"""The factorised score head of HIERARCHY.md D2 (a): layer-1 logits over C + bg and per-parent child logits.

Its input is the predictor's relation logits (R values per pair). Every predictor
ends in a linear map of its pair representation (plus the frequency bias), so a
linear head on the logits is a linear map of that same representation, reached
without changing any predictor's outputs; with R = |C| + 1 + |F| outputs it keeps
the logits' full rank. It also runs unchanged inside the post-processor, which only
sees the logits. Initialised as a selection (layer-1 node c reads logit c, child f
reads logit f, no bias), so training starts from the flat scores and draws no
random numbers.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from .layout import TreeLayout
from .losses import group_log_softmax


class FactorisedHead(nn.Module):
    """``(N, R)`` relation logits -> ``(log P1 (N, N1), log P2 (N, K))``."""

    def __init__(self, layout: TreeLayout) -> None:
        super().__init__()
        self.layout = layout
        self.layer1 = nn.Linear(layout.num_predicates, layout.num_nodes)
        self.children_logits = nn.Linear(layout.num_predicates, layout.num_children)
        with torch.no_grad():
            for linear, ids in ((self.layer1, layout.layer1_ids), (self.children_logits, layout.child_ids)):
                linear.weight.zero_()
                linear.bias.zero_()
                linear.weight[torch.arange(ids.numel()), ids] = 1.0

    def forward(self, logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        log_p1 = torch.log_softmax(self.layer1(logits), dim=-1)
        return log_p1, group_log_softmax(self.children_logits(logits), self.layout)
