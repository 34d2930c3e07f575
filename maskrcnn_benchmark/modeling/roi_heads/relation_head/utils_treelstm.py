"""Binary TreeLSTMs of VCTree with highway outputs, run level by level over a :class:`BinaryForest`.

The "foreward" cell goes from the leaves to the root (a node sees both children), the "backward"
cell from the root to the leaves (a node sees its binary-tree parent). Nodes of one level are
independent, so each level is one batched step; the result equals the node-by-node recursion.
Each direction of each layer draws one dropout mask per image, applied to every node's output
during training.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .utils_motifs import block_orthogonal_, dropout_mask
from .utils_vctree import BinaryForest


def _node_mask(mask: Optional[torch.Tensor], forest: BinaryForest, level: torch.Tensor) -> Optional[torch.Tensor]:
    return mask[forest.image[level]] if mask is not None else None


def _highway_output(o: torch.Tensor, c_new: torch.Tensor, r: torch.Tensor, skip: torch.Tensor,
                    node_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """A level's new hidden state: the LSTM output mixed with the input projection ``skip`` by the
    highway gate ``r``, then the nodes' dropout mask (both directions share this)."""
    highway = torch.sigmoid(r)
    h_new = highway * (torch.sigmoid(o) * torch.tanh(c_new)) + (1 - highway) * skip
    return h_new * node_mask if node_mask is not None else h_new


def _or_sentinel(index: torch.Tensor, sentinel: int) -> torch.Tensor:
    """Replace -1 (no node) by the row ``sentinel`` that holds zero states."""
    return torch.where(index >= 0, index, torch.full_like(index, sentinel))


class TreeLSTMUpCell(nn.Module):
    """Leaves-to-root cell (the benchmark's ``BiTreeLSTM_Foreward``): gates i, o, f_left, f_right, u, r."""

    def __init__(self, feat_dim: int, h_dim: int) -> None:
        super().__init__()
        self.h_dim = h_dim
        self.px = nn.Linear(feat_dim, h_dim)
        self.ioffux = nn.Linear(feat_dim, 6 * h_dim)
        self.ioffuh_left = nn.Linear(h_dim, 6 * h_dim)
        self.ioffuh_right = nn.Linear(h_dim, 6 * h_dim)
        block_orthogonal_(self.px.weight, [h_dim, feat_dim])
        block_orthogonal_(self.ioffux.weight, [h_dim, feat_dim])
        block_orthogonal_(self.ioffuh_left.weight, [h_dim, h_dim])
        block_orthogonal_(self.ioffuh_right.weight, [h_dim, h_dim])
        with torch.no_grad():
            for layer in (self.px, self.ioffux, self.ioffuh_left, self.ioffuh_right):
                layer.bias.zero_()
            self.ioffuh_left.bias[2 * h_dim:4 * h_dim] = 0.5
            self.ioffuh_right.bias[2 * h_dim:4 * h_dim] = 0.5

    def forward(self, forest: BinaryForest, features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``[N, h_dim]`` hidden state of every node; ``mask`` is ``[num_images, h_dim]`` or None."""
        num = forest.num_nodes
        c = features.new_zeros(num + 1, self.h_dim)
        h = features.new_zeros(num + 1, self.h_dim)
        left, right = _or_sentinel(forest.left, num), _or_sentinel(forest.right, num)
        for level in forest.up_levels:
            x = features[level]
            lc, rc, lh, rh = c[left[level]], c[right[level]], h[left[level]], h[right[level]]
            gates = self.ioffux(x) + self.ioffuh_left(lh) + self.ioffuh_right(rh)
            i, o, f_l, f_r, u, r = gates.chunk(6, dim=1)
            c_new = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_l) * lc + torch.sigmoid(f_r) * rc
            h_new = _highway_output(o, c_new, r, self.px(x), _node_mask(mask, forest, level))
            c = c.index_put((level,), c_new.to(c.dtype))
            h = h.index_put((level,), h_new.to(h.dtype))
        return h[:num]


class TreeLSTMDownCell(nn.Module):
    """Root-to-leaves cell (the benchmark's ``BiTreeLSTM_Backward``): gates i, o, f, u, r.

    With ``embed_layer`` / ``embed_out_layer`` it is VCTree's label decoder: each node also reads
    its parent's label embedding (row 0, 'start', at the root) and predicts its own label.
    """

    def __init__(self, feat_dim: int, h_dim: int, embed_layer: Optional[nn.Embedding] = None,
                 embed_out_layer: Optional[nn.Linear] = None) -> None:
        super().__init__()
        self.h_dim = h_dim
        self.embed_layer = embed_layer
        self.embed_out_layer = embed_out_layer
        self.px = nn.Linear(feat_dim, h_dim)
        self.iofux = nn.Linear(feat_dim, 5 * h_dim)
        self.iofuh = nn.Linear(h_dim, 5 * h_dim)
        block_orthogonal_(self.px.weight, [h_dim, feat_dim])
        block_orthogonal_(self.iofux.weight, [h_dim, feat_dim])
        block_orthogonal_(self.iofuh.weight, [h_dim, h_dim])
        with torch.no_grad():
            for layer in (self.px, self.iofux, self.iofuh):
                layer.bias.zero_()
            self.iofuh.bias[2 * h_dim:3 * h_dim] = 1.0

    def forward(self, forest: BinaryForest, features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``[N, h_dim]`` hidden state of every node; ``mask`` is ``[num_images, h_dim]`` or None."""
        return self._run(forest, features, mask, decode=False)[0]

    def decode(self, forest: BinaryForest, features: torch.Tensor, mask: Optional[torch.Tensor]
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(hidden [N, h_dim], logits [N, C], labels [N])`` of the label decoder.

        Children are fed a label drawn from the non-background softmax in training and the
        best non-background label otherwise; the returned labels are the best ones.
        """
        if self.embed_layer is None or self.embed_out_layer is None:
            raise RuntimeError("decoding needs embed_layer and embed_out_layer")
        return self._run(forest, features, mask, decode=True)

    def _run(self, forest: BinaryForest, features: torch.Tensor, mask: Optional[torch.Tensor], decode: bool
             ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        num = forest.num_nodes
        c = features.new_zeros(num + 1, self.h_dim)
        h = features.new_zeros(num + 1, self.h_dim)
        parent = _or_sentinel(forest.parent, num)
        fed = torch.zeros(num + 1, dtype=torch.int64, device=features.device)
        dists = labels = None
        if decode:
            dists = features.new_zeros(num, self.embed_out_layer.out_features)
            labels = torch.zeros(num, dtype=torch.int64, device=features.device)
        for level in forest.down_levels:
            p = parent[level]
            x = features[level]
            if decode:
                x = torch.cat((x, self.embed_layer(fed[p])), 1)
            gates = self.iofux(x) + self.iofuh(h[p])
            i, o, f, u, r = gates.chunk(5, dim=1)
            c_new = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f) * c[p]
            h_new = _highway_output(o, c_new, r, self.px(x), _node_mask(mask, forest, level))
            c = c.index_put((level,), c_new.to(c.dtype))
            h = h.index_put((level,), h_new.to(h.dtype))
            if decode:
                dist = self.embed_out_layer(h_new)
                best = dist[:, 1:].argmax(dim=1) + 1
                if self.training:
                    choice = F.softmax(dist.detach(), dim=1)[:, 1:].multinomial(1).squeeze(1) + 1
                else:
                    choice = best
                fed = fed.index_put((level,), choice + 1)
                dists = dists.index_put((level,), dist.to(dists.dtype))
                labels = labels.index_put((level,), best)
        return h[:num], dists, labels


def forest_dropout_mask(p: float, forest: BinaryForest, dim: int, device: torch.device, training: bool
                        ) -> Optional[torch.Tensor]:
    """One dropout mask per image (``[num_images, dim]``) in training, else None."""
    if not training or p <= 0.0:
        return None
    return dropout_mask(p, (forest.num_images, dim), device)


class OneDirectionalTreeLSTM(nn.Module):
    """One TreeLSTM direction ('foreward' = leaves to root, 'backward' = root to leaves)."""

    def __init__(self, in_dim: int, out_dim: int, direction: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout
        self.out_dim = out_dim
        if direction == "foreward":
            self.treeLSTM = TreeLSTMUpCell(in_dim, out_dim)
        elif direction == "backward":
            self.treeLSTM = TreeLSTMDownCell(in_dim, out_dim)
        else:
            raise ValueError(f"direction should be 'foreward' or 'backward', got {direction!r}")

    def forward(self, forest: BinaryForest, features: torch.Tensor) -> torch.Tensor:
        mask = forest_dropout_mask(self.dropout, forest, self.out_dim, features.device, self.training)
        return self.treeLSTM(forest, features, mask)


class BidirectionalTreeLSTM(nn.Module):
    """Both directions, each of size ``out_dim / 2``, concatenated."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.treeLSTM_foreward = OneDirectionalTreeLSTM(in_dim, out_dim // 2, "foreward", dropout)
        self.treeLSTM_backward = OneDirectionalTreeLSTM(in_dim, out_dim // 2, "backward", dropout)

    def forward(self, forest: BinaryForest, features: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.treeLSTM_foreward(forest, features), self.treeLSTM_backward(forest, features)), 1)


class MultiLayerBiTreeLSTM(nn.Module):
    """Stacked bidirectional TreeLSTMs (``multi_layer_lstm.<i>``)."""

    def __init__(self, in_dim: int, out_dim: int, num_layer: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_layer < 1:
            raise ValueError("a TreeLSTM needs at least one layer")
        self.multi_layer_lstm = nn.ModuleList(
            [BidirectionalTreeLSTM(in_dim if i == 0 else out_dim, out_dim, dropout) for i in range(num_layer)])

    def forward(self, forest: BinaryForest, features: torch.Tensor) -> torch.Tensor:
        for layer in self.multi_layer_lstm:
            features = layer(forest, features)
        return features
