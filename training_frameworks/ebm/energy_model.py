"""The energy E(image graph, scene graph): one scalar per image (EBM.md 2; release ``GraphEnergyModel``).

The release's unused layers (``rel_embeding``, the pooling ``htheta`` transforms) are left out.
"""
from __future__ import annotations

import torch
from torch import nn

from .graph import GraphBatch
from .layers import EdgeGNN, ImageGraphGNN
from .pooling import NodeEdgePooling, NodePooling

BOX_CODE_DIM = 9  # encode_box_info
BOX_HIDDEN_DIM = 32  # release hard-coded


class EnergyModel(nn.Module):
    """Image graph: Linear(F -> d) nodes, GRU message passing, gated pooling. Scene graph: nodes
    Linear([label state, box embedding] -> d), edges Linear(predicate state -> d_e), EGNN, gated
    pooling. Energy: MLP([image pooled, scene pooled]) -> [B, 1]."""

    def __init__(self, feature_dim: int, num_obj_classes: int, num_rel_classes: int, node_dim: int = 512,
                 edge_dim: int = 512, pooling_dim: int = 512, box_embed_dim: int = 128, iters: int = 3,
                 alpha: float = 0.5, bn_momentum: float = 0.001) -> None:
        super().__init__()
        self.box_embed = nn.Sequential(nn.Linear(BOX_CODE_DIM, BOX_HIDDEN_DIM),
                                       nn.BatchNorm1d(BOX_HIDDEN_DIM, momentum=bn_momentum),
                                       nn.Linear(BOX_HIDDEN_DIM, box_embed_dim), nn.ReLU())
        self.image_node_embed = nn.Linear(feature_dim, node_dim)
        self.label_node_embed = nn.Linear(num_obj_classes + box_embed_dim, node_dim)
        self.predicate_edge_embed = nn.Linear(num_rel_classes, edge_dim)
        self.image_gnn = ImageGraphGNN(node_dim, iters)
        self.scene_gnn = EdgeGNN(node_dim, edge_dim, iters, alpha)
        self.image_pool = NodePooling(node_dim, pooling_dim)
        self.scene_pool = NodeEdgePooling(node_dim, edge_dim, pooling_dim)
        self.energy = nn.Sequential(nn.Linear(2 * pooling_dim, pooling_dim), nn.ReLU(), nn.Linear(pooling_dim, 1))

    def forward(self, graph: GraphBatch) -> torch.Tensor:
        """``[num_images, 1]`` energies (float32)."""
        image_nodes = self.image_gnn(self.image_node_embed(graph.image_features), graph.pairs)
        scene_nodes = self.label_node_embed(torch.cat([graph.node_states, self.box_embed(graph.boxes)], dim=1))
        scene_edges = self.predicate_edge_embed(graph.edge_states)
        scene_nodes, scene_edges = self.scene_gnn(scene_nodes, scene_edges, graph.pairs)
        pooled = torch.cat([self.image_pool(image_nodes, graph.node_batch, graph.num_images),
                            self.scene_pool(scene_nodes, scene_edges, graph.node_batch, graph.edge_batch,
                                            graph.num_images)], dim=1)
        return self.energy(pooled).float()
