"""Gated sum pooling per image (EBM.md 2.5): raw linear gates (no sigmoid), as in the release."""
from __future__ import annotations

import torch
from torch import nn


def gated_sum(states: torch.Tensor, gate: nn.Linear, batch: torch.Tensor, num_images: int) -> torch.Tensor:
    """``[num_images, d]``: sum over each image's rows of gate(row) * row (0 for an image without rows)."""
    out = torch.zeros(num_images, states.shape[1], device=states.device, dtype=states.dtype)
    return out.index_add_(0, batch, gate(states) * states)


class NodePooling(nn.Module):
    """Image graph: gated node sum, then Linear(d -> pooled)."""

    def __init__(self, dim: int, pooled: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, 1)
        self.out = nn.Linear(dim, pooled)

    def forward(self, nodes: torch.Tensor, node_batch: torch.Tensor, num_images: int) -> torch.Tensor:
        return self.out(gated_sum(nodes, self.gate, node_batch, num_images))


class NodeEdgePooling(nn.Module):
    """Scene graph: gated node sum and gated edge sum, concatenated, then Linear(d_n + d_e -> pooled)."""

    def __init__(self, node_dim: int, edge_dim: int, pooled: int) -> None:
        super().__init__()
        self.node_gate = nn.Linear(node_dim, 1)
        self.edge_gate = nn.Linear(edge_dim, 1)
        self.out = nn.Linear(node_dim + edge_dim, pooled)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, node_batch: torch.Tensor,
                edge_batch: torch.Tensor, num_images: int) -> torch.Tensor:
        pooled = torch.cat([gated_sum(nodes, self.node_gate, node_batch, num_images),
                            gated_sum(edges, self.edge_gate, edge_batch, num_images)], dim=1)
        return self.out(pooled)
