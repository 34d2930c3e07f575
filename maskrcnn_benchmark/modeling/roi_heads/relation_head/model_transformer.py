"""Transformer context: post-LN self-attention encoders over the objects of each image
(padding-masked), one for object context and one for edge context."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from maskrcnn_benchmark.config.modes import check_mode
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .inference import obj_prediction_nms
from .model_motifs import POS_EMBED_DIM, label_embedding_input, make_label_embedding
from .utils_motifs import encode_box_info, to_onehot


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with residual and LayerNorm; ``mask`` is True where a key is padding."""

    def __init__(self, n_head: int, d_model: int, d_k: int, d_v: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k)
        self.w_ks = nn.Linear(d_model, n_head * d_k)
        self.w_vs = nn.Linear(d_model, n_head * d_v)
        nn.init.normal_(self.w_qs.weight, mean=0.0, std=math.sqrt(2.0 / (d_model + d_k)))
        nn.init.normal_(self.w_ks.weight, mean=0.0, std=math.sqrt(2.0 / (d_model + d_k)))
        nn.init.normal_(self.w_vs.weight, mean=0.0, std=math.sqrt(2.0 / (d_model + d_v)))
        self.attn_dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(n_head * d_v, d_model)
        nn.init.xavier_normal_(self.fc.weight)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.w_qs(x).view(batch, length, self.n_head, self.d_k).transpose(1, 2)
        k = self.w_ks(x).view(batch, length, self.n_head, self.d_k).transpose(1, 2)
        v = self.w_vs(x).view(batch, length, self.n_head, self.d_v).transpose(1, 2)
        attn = (q @ k.transpose(-1, -2)) / math.sqrt(self.d_k)
        attn = attn.masked_fill(key_padding[:, None, None, :], float("-inf"))
        attn = self.attn_dropout(F.softmax(attn, dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(batch, length, self.n_head * self.d_v)
        return self.layer_norm(self.dropout(self.fc(out)) + x)


class PositionwiseFeedForward(nn.Module):
    """Two position-wise layers (``Conv1d`` with kernel 1, as the benchmark stores them), residual, LayerNorm."""

    def __init__(self, d_in: int, d_hid: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w_1 = nn.Conv1d(d_in, d_hid, 1)
        self.w_2 = nn.Conv1d(d_hid, d_in, 1)
        self.layer_norm = nn.LayerNorm(d_in)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.w_2(F.relu(self.w_1(x.transpose(1, 2)))).transpose(1, 2)
        return self.layer_norm(self.dropout(out) + x)


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_inner: int, n_head: int, d_k: int, d_v: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.slf_attn = MultiHeadAttention(n_head, d_model, d_k, d_v, dropout=dropout)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner, dropout=dropout)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor) -> torch.Tensor:
        keep = (~key_padding).unsqueeze(-1).to(x.dtype)
        x = self.slf_attn(x, key_padding) * keep
        return self.pos_ffn(x) * keep


class TransformerEncoder(nn.Module):
    """Stack of encoder layers applied to each image's objects (``[sum N, d_model]`` in and out)."""

    def __init__(self, n_layers: int, n_head: int, d_k: int, d_v: int, d_model: int, d_inner: int,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.layer_stack = nn.ModuleList(
            [EncoderLayer(d_model, d_inner, n_head, d_k, d_v, dropout=dropout) for _ in range(n_layers)])

    def forward(self, feats: torch.Tensor, num_objs: Sequence[int]) -> torch.Tensor:
        if not any(num_objs):
            return feats
        padded = pad_sequence(list(feats.split(list(num_objs), dim=0)), batch_first=True)
        lengths = torch.tensor(list(num_objs), device=feats.device)
        key_padding = torch.arange(padded.shape[1], device=feats.device)[None, :] >= lengths[:, None]
        for layer in self.layer_stack:
            padded = layer(padded, key_padding)
        return padded[~key_padding]


class TransformerContext(nn.Module):
    """Object and edge contexts of the Transformer predictor.

    Args:
        class_vectors: ``[C + 1, E]`` word vectors of ``['start'] + obj_classes`` (row 0 is unused here).
        in_channels: size of the ROI features.
        hidden_dim: CONTEXT_HIDDEN_DIM (d_model).
        obj_layers, edge_layers, num_head, inner_dim, key_dim, val_dim, dropout_rate: TRANSFORMER.*.
        mode: 'predcls', 'sgcls' or 'sgdet'.
        nms_thresh: TEST.RELATION.LATER_NMS_PREDICTION_THRES (SGDet test labels).
    """

    def __init__(self, class_vectors: torch.Tensor, in_channels: int, hidden_dim: int = 512,
                 obj_layers: int = 4, edge_layers: int = 2, num_head: int = 8, inner_dim: int = 2048,
                 key_dim: int = 64, val_dim: int = 64, dropout_rate: float = 0.1, mode: str = "predcls",
                 nms_thresh: float = 0.3) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_cls = class_vectors.shape[0] - 1
        self.embed_dim = class_vectors.shape[1]
        self.nms_thresh = nms_thresh
        self.obj_embed1 = make_label_embedding(class_vectors[1:])
        self.obj_embed2 = make_label_embedding(class_vectors[1:])
        self.bbox_embed = nn.Sequential(nn.Linear(9, 32), nn.ReLU(inplace=True), nn.Dropout(0.1),
                                        nn.Linear(32, POS_EMBED_DIM), nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.lin_obj = nn.Linear(in_channels + self.embed_dim + POS_EMBED_DIM, hidden_dim)
        self.lin_edge = nn.Linear(self.embed_dim + hidden_dim + in_channels, hidden_dim)
        self.out_obj = nn.Linear(hidden_dim, self.num_obj_cls)
        self.context_obj = TransformerEncoder(obj_layers, num_head, key_dim, val_dim, hidden_dim, inner_dim,
                                              dropout_rate)
        self.context_edge = TransformerEncoder(edge_layers, num_head, key_dim, val_dim, hidden_dim, inner_dim,
                                               dropout_rate)

    def forward(self, roi_features: torch.Tensor, proposals: Sequence[BoxList]
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(obj_dists [sum N, C], obj_preds [sum N], edge_ctx [sum N, hidden_dim])``."""
        num_objs = [len(p) for p in proposals]
        obj_embed = label_embedding_input(proposals, self.obj_embed1, self.mode == "predcls")
        pos_embed = self.bbox_embed(encode_box_info(proposals))
        obj_pre_rep = self.lin_obj(torch.cat((roi_features, obj_embed, pos_embed), -1))
        obj_feats = self.context_obj(obj_pre_rep, num_objs)

        if self.mode == "predcls":
            obj_preds = torch.cat([p.get_field("labels") for p in proposals]).long()
            obj_dists = to_onehot(obj_preds, self.num_obj_cls)
        else:
            obj_dists = self.out_obj(obj_feats)
            if self.mode == "sgdet" and not self.training:
                obj_preds = torch.cat([
                    obj_prediction_nms(p.get_field("boxes_per_cls"), d, self.nms_thresh)
                    for p, d in zip(proposals, obj_dists.split(num_objs)) if len(p)
                ] or [obj_dists.new_zeros(0, dtype=torch.int64)])
            else:
                obj_preds = obj_dists[:, 1:].argmax(dim=1) + 1
        edge_pre_rep = torch.cat((roi_features, obj_feats, self.obj_embed2(obj_preds)), dim=-1)
        edge_ctx = self.context_edge(self.lin_edge(edge_pre_rep), num_objs)
        return obj_dists, obj_preds, edge_ctx
