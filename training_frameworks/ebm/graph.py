"""The batch of (image graph, scene graph) pairs an energy is computed for, and its state encodings.

All images of a batch form one block-diagonal graph held as lists: nodes are concatenated over
images (``node_batch`` gives each node's image), edges are ``pairs`` of global node indices
(subject, object) with ``edge_batch``. Both graphs of a sample share the nodes and the pairs;
the image graph's node inputs are box features, the scene graph's are label states plus the box
code. Edge lists make the cost linear in the number of pairs (the release holds N x N x d tensors).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Sequence

import torch


@dataclass
class GraphBatch:
    """``image_features [N, F]``, ``boxes [N, 9]`` (``encode_box_info``), ``node_states [N, C_obj]``,
    ``edge_states [E, C_rel]``, ``pairs [E, 2]`` (global indices), ``node_batch [N]``, ``edge_batch [E]``
    and ``num_images`` (pooling returns that many rows, also for images without nodes or edges)."""

    image_features: torch.Tensor
    boxes: torch.Tensor
    node_states: torch.Tensor
    edge_states: torch.Tensor
    pairs: torch.Tensor
    node_batch: torch.Tensor
    edge_batch: torch.Tensor
    num_images: int

    def with_states(self, node_states: torch.Tensor, edge_states: torch.Tensor) -> "GraphBatch":
        return replace(self, node_states=node_states, edge_states=edge_states)


def batch_indices(counts: Sequence[int], device: torch.device) -> torch.Tensor:
    """``[sum counts]`` image index of each element given per-image counts."""
    return torch.repeat_interleave(torch.arange(len(counts), device=device),
                                   torch.as_tensor(list(counts), device=device, dtype=torch.long))


def global_pairs(pairs: Sequence[torch.Tensor], num_nodes: Sequence[int]) -> torch.Tensor:
    """Per-image local ``[E_i, 2]`` pairs shifted by each image's node offset and concatenated."""
    offsets: List[int] = [0]
    for count in num_nodes[:-1]:
        offsets.append(offsets[-1] + int(count))
    shifted = [p.long().reshape(-1, 2) + offset for p, offset in zip(pairs, offsets)]
    return torch.cat(shifted, dim=0)


def minmax_rows(states: torch.Tensor) -> torch.Tensor:
    """Each row minus its min, divided by its (new) max: rows in [0, 1] with min 0 and max 1
    (the release's ``normalize_states``; a constant row divides by zero, as there)."""
    shifted = states - states.min(dim=1, keepdim=True).values
    return shifted / shifted.max(dim=1, keepdim=True).values


def simplex_rows(states: torch.Tensor) -> torch.Tensor:
    """Negative entries set to 0, then each row divided by its sum (the renormalisation of the softmax option)."""
    clipped = states.clamp(min=0)
    return clipped / clipped.sum(dim=1, keepdim=True).clamp(min=1e-12)


def one_hot_states(labels: torch.Tensor, num_classes: int, noise: float) -> torch.Tensor:
    """One-hot rows (1 at the label, 0 elsewhere, the release's fork of ``to_onehot``) plus N(0, noise) noise."""
    states = torch.nn.functional.one_hot(labels.long(), num_classes).float()
    if noise > 0:
        states = states + noise * torch.randn_like(states)
    return states
