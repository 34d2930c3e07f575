"""Message passing of the energy model on edge lists (EBM.md 2.3-2.4).

Both layers run ``iters`` steps with shared weights, every message computed from the old states.
For unique pairs they equal the release's dense formulation (adjacency A[s, o] = 1 per pair):
node->node is the mean over out-neighbours (A h / (A 1 + 1e-6)), edge->node the sum of the edges
where the node is the object, node->edge the MLP of [n_s, n_o] on each pair.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

DEGREE_EPS = 1e-6  # release: epsilon of the degree normalisation


def two_layer_relu(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> ReLU -> Linear -> ReLU, the release's message kernels."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.ReLU())


def mean_over_objects(states: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``[N, d]``: for each node the mean state of the objects of its out-edges (0 without out-edges)."""
    subjects, objects = pairs[:, 0], pairs[:, 1]
    total = torch.zeros_like(states).index_add_(0, subjects, states[objects])
    degree = torch.zeros(states.shape[0], device=states.device, dtype=states.dtype)
    degree = degree.index_add_(0, subjects, torch.ones_like(subjects, dtype=states.dtype))
    return total / (degree[:, None] + DEGREE_EPS)


class ImageGraphGNN(nn.Module):
    """GRU message passing over the image graph's nodes (box features; no edge states)."""

    def __init__(self, dim: int, iters: int = 3) -> None:
        super().__init__()
        self.iters = iters
        self.kernel = two_layer_relu(dim, dim)
        self.gru = nn.GRUCell(dim, dim)

    def forward(self, nodes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        for _ in range(self.iters):
            nodes = self.gru(self.kernel(mean_over_objects(nodes, pairs)), nodes)
        return nodes


class EdgeGNN(nn.Module):
    """The release's EGNN: node and edge states refine each other through GRUs."""

    def __init__(self, node_dim: int, edge_dim: int, iters: int = 3, alpha: float = 0.5) -> None:
        super().__init__()
        self.iters = iters
        self.alpha = alpha
        self.node2node = two_layer_relu(node_dim, node_dim)
        self.edge2node = two_layer_relu(edge_dim, node_dim)
        self.node2edge = two_layer_relu(2 * node_dim, edge_dim)
        self.node_gru = nn.GRUCell(node_dim, node_dim)
        self.edge_gru = nn.GRUCell(edge_dim, edge_dim, bias=False)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, pairs: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        subjects, objects = pairs[:, 0], pairs[:, 1]
        for _ in range(self.iters):
            node_msg = mean_over_objects(nodes, pairs)
            edge_msg = torch.zeros(nodes.shape[0], edges.shape[1], device=edges.device, dtype=edges.dtype)
            edge_msg = edge_msg.index_add_(0, objects, edges)
            pair_msg = self.node2edge(torch.cat([nodes[subjects], nodes[objects]], dim=1))
            update = self.alpha * self.node2node(node_msg) + (1 - self.alpha) * self.edge2node(edge_msg)
            nodes, edges = self.node_gru(update, nodes), self.edge_gru(pair_msg, edges)
        return nodes, edges
