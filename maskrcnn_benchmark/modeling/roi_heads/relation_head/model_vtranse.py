"""VTransE context (Zhang et al.) as the causal predictor's third context layer: no sequence model,
one linear object classifier and one linear edge embedding per box (CAUSAL.md 3.1)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.config.modes import check_mode
from maskrcnn_benchmark.modeling.make_layers import make_fc
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .model_motifs import POS_EMBED_DIM, label_embedding_input, make_label_embedding, make_pos_embed
from .moving_average import require_averages, untreated_rows, update_moving_average
from .utils_motifs import encode_box_info


class VTransEFeature(nn.Module):
    """Object logits ``pred_layer([x; emb; pos])`` and edge context ``relu(fc_layer([x; pos; emb2]))``.

    As in the benchmark the object labels are the argmax of ``pred_layer`` over all classes,
    background included, in every mode (PredCls too), and there is no SGDet NMS.

    Args:
        class_vectors: ``[C + 1, E]`` word vectors of ``['start'] + obj_classes``; rows 1..
            initialise ``obj_embed1`` / ``obj_embed2``.
        in_channels: size of the ROI features.
        hidden_dim: CONTEXT_HIDDEN_DIM, the width of the edge context.
        mode: 'predcls', 'sgcls' or 'sgdet' (PredCls embeds the GT labels).
        effect_analysis: CAUSAL.EFFECT_ANALYSIS; registers ``untreated_obj_feat`` and
            ``untreated_edg_feat``, updated in training while ``track_averages``.
    """

    def __init__(self, class_vectors: torch.Tensor, in_channels: int, hidden_dim: int = 512,
                 mode: str = "predcls", effect_analysis: bool = False) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_classes = class_vectors.shape[0] - 1
        self.embed_dim = class_vectors.shape[1]
        self.hidden_dim = hidden_dim
        self.effect_analysis = effect_analysis
        self.track_averages = True
        obj_input_dim = in_channels + self.embed_dim + POS_EMBED_DIM

        self.obj_embed1 = make_label_embedding(class_vectors[1:])
        self.obj_embed2 = make_label_embedding(class_vectors[1:])
        self.pos_embed = make_pos_embed()
        self.pred_layer = make_fc(obj_input_dim, self.num_obj_classes)
        self.fc_layer = make_fc(obj_input_dim, hidden_dim)
        if effect_analysis:
            self.register_buffer("untreated_obj_feat", torch.zeros(obj_input_dim))
            self.register_buffer("untreated_edg_feat", torch.zeros(in_channels + POS_EMBED_DIM))

    def forward(self, roi_features: torch.Tensor, proposals: Sequence[BoxList], ctx_average: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(obj_dists [sum N, C], obj_preds [sum N], edge_ctx [sum N, hidden_dim])``.

        ``ctx_average``: the counterfactual pass: the object input is the untreated average, and
        the edge input the untreated ``[x; pos]`` with the expected label embedding of the
        resulting object distribution.
        """
        if ctx_average:
            require_averages(self)
        obj_embed = label_embedding_input(proposals, self.obj_embed1, self.mode == "predcls")
        pos_embed = self.pos_embed(encode_box_info(proposals))
        obj_pre_rep = torch.cat((roi_features, obj_embed, pos_embed), -1)
        edge_feat = torch.cat((roi_features, pos_embed), -1)
        if self.training and self.effect_analysis and self.track_averages:
            update_moving_average(self.untreated_obj_feat, obj_pre_rep)
            update_moving_average(self.untreated_edg_feat, edge_feat)
        if ctx_average:
            obj_pre_rep = untreated_rows(self.untreated_obj_feat, obj_pre_rep.shape[0])
        obj_dists = self.pred_layer(obj_pre_rep)
        obj_preds = obj_dists.argmax(-1)
        if ctx_average:
            edge_inp = torch.cat((untreated_rows(self.untreated_edg_feat, edge_feat.shape[0]),
                                  F.softmax(obj_dists, dim=1) @ self.obj_embed2.weight), -1)
        else:
            edge_inp = torch.cat((edge_feat, self.obj_embed2(obj_preds)), -1)
        return obj_dists, obj_preds, F.relu(self.fc_layer(edge_inp))
