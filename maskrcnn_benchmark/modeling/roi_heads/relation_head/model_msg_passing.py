"""IMP context (Xu et al., iterative message passing): node and edge GRUs that exchange gated
messages between each relation and its subject and object boxes."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.config.modes import check_mode
from maskrcnn_benchmark.modeling.make_layers import make_fc
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .utils_motifs import to_onehot


def _gate(hidden_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden_dim * 2, 1), nn.Sigmoid())


class IMPContext(nn.Module):
    """Message passing between boxes and relation pairs.

    Args:
        num_obj: object classes (with background).
        num_rel: predicate classes (with background).
        in_channels: size of the ROI features.
        pooling_dim: size of the union features.
        hidden_dim: GRU size (the benchmark always uses 512).
        num_iter: message passing rounds (3).
        mode: 'predcls' (object logits are the one-hot GT), 'sgcls' or 'sgdet'.
    """

    def __init__(self, num_obj: int, num_rel: int, in_channels: int, pooling_dim: int, hidden_dim: int = 512,
                 num_iter: int = 3, mode: str = "predcls") -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj = num_obj
        self.hidden_dim = hidden_dim
        self.num_iter = num_iter
        self.rel_fc = make_fc(hidden_dim, num_rel)
        self.obj_fc = make_fc(hidden_dim, num_obj)
        self.obj_unary = make_fc(in_channels, hidden_dim)
        self.edge_unary = make_fc(pooling_dim, hidden_dim)
        self.edge_gru = nn.GRUCell(input_size=hidden_dim, hidden_size=hidden_dim)
        self.node_gru = nn.GRUCell(input_size=hidden_dim, hidden_size=hidden_dim)
        self.sub_vert_w_fc = _gate(hidden_dim)
        self.obj_vert_w_fc = _gate(hidden_dim)
        self.out_edge_w_fc = _gate(hidden_dim)
        self.in_edge_w_fc = _gate(hidden_dim)

    def forward(self, roi_features: torch.Tensor, proposals: Sequence[BoxList], union_features: torch.Tensor,
                rel_pair_idxs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(obj_dists [sum N, num_obj], rel_dists [sum R, num_rel])``."""
        num_objs = [len(p) for p in proposals]
        offsets = torch.tensor([0] + num_objs[:-1], device=roi_features.device).cumsum(0)
        sub_idx = torch.cat([pairs[:, 0].long() + off for pairs, off in zip(rel_pair_idxs, offsets)])
        obj_idx = torch.cat([pairs[:, 1].long() + off for pairs, off in zip(rel_pair_idxs, offsets)])

        obj_rep = self.obj_unary(roi_features)
        rel_rep = F.relu(self.edge_unary(union_features))
        vert = self.node_gru(obj_rep, torch.zeros_like(obj_rep))
        edge = self.edge_gru(rel_rep, torch.zeros_like(rel_rep))
        for _ in range(self.num_iter):
            sub_vert, obj_vert = vert[sub_idx], vert[obj_idx]
            weighted_sub = self.sub_vert_w_fc(torch.cat((sub_vert, edge), 1)) * sub_vert
            weighted_obj = self.obj_vert_w_fc(torch.cat((obj_vert, edge), 1)) * obj_vert
            pre_out = self.out_edge_w_fc(torch.cat((sub_vert, edge), 1)) * edge
            pre_in = self.in_edge_w_fc(torch.cat((obj_vert, edge), 1)) * edge
            vert_ctx = (torch.zeros_like(vert).index_add(0, sub_idx, pre_out)
                        .index_add(0, obj_idx, pre_in))
            edge = self.edge_gru(weighted_sub + weighted_obj, edge)
            vert = self.node_gru(vert_ctx, vert)

        if self.mode == "predcls":
            labels = torch.cat([p.get_field("labels") for p in proposals])
            obj_dists = to_onehot(labels, self.num_obj)
        else:
            obj_dists = self.obj_fc(vert)
        return obj_dists, self.rel_fc(edge)
