"""The two-layer predicate tree as index tensors (HIERARCHY.md D2 notation).

Layer 1 has one node per coarse predicate plus background (node 0); every
predicate id maps to the layer-1 node on its path (a fine predicate to its
parent's node). Layer 2 holds the fine predicates whose parent has at least two
children, one child softmax ("group") per such parent; D2 skips P2 for parents
with fewer children, so a lone child shares its parent's node and has no P2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch

from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy


@dataclass(frozen=True)
class TreeLayout:
    """Index tensors of a hierarchy over ``num_predicates`` ids (background 0 included).

    Attributes:
        layer1_ids: (N1,) predicate id of each layer-1 node (background first, then coarse by id).
        node_of: (R,) layer-1 node of every predicate id.
        node_members: (N1, R) bool, predicate ``k`` is in ``{c} U ch(c)`` of node ``c``.
        child_ids: (K,) predicate ids of the layer-2 children, by group then id.
        child_group: (K,) layer-1 node whose child softmax each child belongs to.
        child_pos: (R,) position of a predicate in ``child_ids``, -1 when it has no P2.
    """

    layer1_ids: torch.Tensor
    node_of: torch.Tensor
    node_members: torch.Tensor
    child_ids: torch.Tensor
    child_group: torch.Tensor
    child_pos: torch.Tensor

    @classmethod
    def from_hierarchy(cls, hierarchy: PredicateHierarchy) -> "TreeLayout":
        num = len(hierarchy.names)
        layer1: List[int] = [0] + hierarchy.coarse_ids()
        node = {pid: j for j, pid in enumerate(layer1)}
        node_of = torch.tensor([node[hierarchy.parent[k]] for k in range(num)], dtype=torch.long)
        members = node_of[None, :] == torch.arange(len(layer1))[:, None]
        child_ids, child_group = [], []
        for c in layer1[1:]:
            children = hierarchy.children(c)
            if len(children) >= 2:
                child_ids += children
                child_group += [node[c]] * len(children)
        child_pos = torch.full((num,), -1, dtype=torch.long)
        child_pos[torch.tensor(child_ids, dtype=torch.long)] = torch.arange(len(child_ids))
        return cls(torch.tensor(layer1, dtype=torch.long), node_of, members,
                   torch.tensor(child_ids, dtype=torch.long), torch.tensor(child_group, dtype=torch.long),
                   child_pos)

    @property
    def num_predicates(self) -> int:
        """R: predicate ids including background."""
        return int(self.node_of.numel())

    @property
    def num_nodes(self) -> int:
        """N1 = |C| + 1 (background counted)."""
        return int(self.layer1_ids.numel())

    @property
    def num_children(self) -> int:
        """K: fine predicates with a P2 term."""
        return int(self.child_ids.numel())

    def group_members(self) -> torch.Tensor:
        """(N1, K) bool: child ``k`` belongs to the child softmax of node ``j``."""
        return self.child_group[None, :] == torch.arange(self.num_nodes)[:, None]
