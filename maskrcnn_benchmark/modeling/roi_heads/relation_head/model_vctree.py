"""VCTree context (Tang et al.): a per-image tree built from learned pairwise scores, bidirectional
TreeLSTMs for object and edge contexts, and a root-to-leaves TreeLSTM that decodes object labels."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.config.modes import check_mode
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .model_motifs import POS_EMBED_DIM, label_embedding_input, make_label_embedding, make_pos_embed
from .moving_average import require_averages, untreated_rows, update_moving_average
from .utils_motifs import encode_box_info, to_onehot, xavier_init
from .utils_treelstm import MultiLayerBiTreeLSTM, TreeLSTMDownCell, forest_dropout_mask
from .utils_vctree import BinaryForest, build_forest, get_overlap_info

TREE_FEATURE_DIM = 128


class DecoderTreeLSTM(nn.Module):
    """Root-to-leaves TreeLSTM that predicts object labels, passing label embeddings down the tree.

    Args:
        class_vectors: ``[C + 1, E]`` vectors of ``['start'] + obj_classes`` (``obj_embed``).
        inputs_dim: per-object input size; the cell also reads the parent's label embedding.
        hidden_dim: TreeLSTM size.
        dropout: rate of the per-image dropout mask (training only).
    """

    def __init__(self, class_vectors: torch.Tensor, inputs_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.hidden_size = hidden_dim
        self.dropout = dropout
        self.obj_embed = make_label_embedding(class_vectors)
        self.out = nn.Linear(hidden_dim, class_vectors.shape[0] - 1)
        self.decoderLSTM = TreeLSTMDownCell(inputs_dim + class_vectors.shape[1], hidden_dim,
                                            embed_layer=self.obj_embed, embed_out_layer=self.out)

    def forward(self, forest: BinaryForest, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, C], labels [N])`` for every node of the forest."""
        mask = forest_dropout_mask(self.dropout, forest, self.hidden_size, features.device, self.training)
        _, dists, labels = self.decoderLSTM.decode(forest, features, mask)
        return dists, labels


class VCTreeLSTMContext(nn.Module):
    """Tree construction and TreeLSTM contexts of VCTree.

    Args:
        class_vectors: ``[C + 1, E]`` word vectors of ``['start'] + obj_classes``.
        in_channels: size of the ROI features.
        pred_dist: ``[C, C, P]`` dataset statistics; summed over predicates and symmetrised it
            initialises the class co-occurrence prior ``bi_freq_prior``.
        hidden_dim, dropout_rate, num_obj_layers, num_edge_layers, mode, effect_analysis:
            as for :class:`~.model_motifs.LSTMContext` (``track_averages`` likewise).
    """

    def __init__(self, class_vectors: torch.Tensor, in_channels: int, pred_dist: torch.Tensor,
                 hidden_dim: int = 512, dropout_rate: float = 0.2, num_obj_layers: int = 1,
                 num_edge_layers: int = 1, mode: str = "predcls", effect_analysis: bool = False) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_classes = class_vectors.shape[0] - 1
        self.embed_dim = class_vectors.shape[1]
        self.hidden_dim = hidden_dim
        self.effect_analysis = effect_analysis
        self.track_averages = True
        obj_input_dim = in_channels + self.embed_dim + POS_EMBED_DIM
        num_cls = self.num_obj_classes
        if tuple(pred_dist.shape[:2]) != (num_cls, num_cls):
            raise ValueError(f"pred_dist should be [{num_cls}, {num_cls}, P], got {tuple(pred_dist.shape)}")

        self.obj_embed1 = make_label_embedding(class_vectors[1:])
        self.obj_embed2 = make_label_embedding(class_vectors[1:])
        self.pos_embed = make_pos_embed()
        self.overlap_embed = nn.Sequential(nn.Linear(6, TREE_FEATURE_DIM),
                                           nn.BatchNorm1d(TREE_FEATURE_DIM, momentum=0.001), nn.ReLU(inplace=True))
        self.box_embed = nn.Sequential(nn.Linear(9, TREE_FEATURE_DIM),
                                       nn.BatchNorm1d(TREE_FEATURE_DIM, momentum=0.001), nn.ReLU(inplace=True))
        self.bi_freq_prior = nn.Linear(num_cls * num_cls, 1, bias=False)
        with torch.no_grad():
            co_occurrence = pred_dist.float().sum(-1)
            self.bi_freq_prior.weight.copy_((co_occurrence + co_occurrence.t()).reshape(1, -1))
        self.obj_reduce = xavier_init(nn.Linear(in_channels, TREE_FEATURE_DIM))
        self.emb_reduce = xavier_init(nn.Linear(self.embed_dim, TREE_FEATURE_DIM))
        self.score_pre = xavier_init(nn.Linear(TREE_FEATURE_DIM * 4, hidden_dim))
        self.score_sub = xavier_init(nn.Linear(hidden_dim, hidden_dim))
        self.score_obj = xavier_init(nn.Linear(hidden_dim, hidden_dim))
        self.vision_prior = nn.Linear(hidden_dim * 3 + 1, 1)

        self.obj_ctx_rnn = MultiLayerBiTreeLSTM(obj_input_dim, hidden_dim, num_obj_layers,
                                                dropout=dropout_rate if num_obj_layers > 1 else 0.0)
        self.decoder_rnn = DecoderTreeLSTM(class_vectors, inputs_dim=obj_input_dim + hidden_dim,
                                           hidden_dim=hidden_dim, dropout=dropout_rate)
        self.edge_ctx_rnn = MultiLayerBiTreeLSTM(self.embed_dim + hidden_dim + in_channels, hidden_dim,
                                                 num_edge_layers,
                                                 dropout=dropout_rate if num_edge_layers > 1 else 0.0)
        if effect_analysis:
            self.register_buffer("untreated_dcd_feat", torch.zeros(obj_input_dim + hidden_dim))
            self.register_buffer("untreated_obj_feat", torch.zeros(obj_input_dim))
            self.register_buffer("untreated_edg_feat", torch.zeros(self.embed_dim + in_channels))

    def pair_scores(self, num_objs: Sequence[int], tree_inp: torch.Tensor, obj_logits: torch.Tensor
                    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Per image, the ``[N, N]`` binary-relatedness logits and tree scores.

        Entry ``[i, j]`` reads box ``j`` as subject and box ``i`` as object. The co-occurrence
        prior is ``p_i^T W p_j`` with ``W`` the ``[C, C]`` view of ``bi_freq_prior``; the vision
        prior is the linear layer on ``[sub * obj, sub, obj, prior]``, computed blockwise.
        """
        hidden = self.hidden_dim
        probs = F.softmax(obj_logits.detach(), dim=-1)
        feat = F.relu(self.score_pre(tree_inp))
        sub_feat = F.relu(self.score_sub(feat))
        obj_feat = F.relu(self.score_obj(feat))
        prior_weight = self.bi_freq_prior.weight.view(self.num_obj_classes, self.num_obj_classes)
        w = self.vision_prior.weight[0]
        w_prod, w_sub, w_obj, w_prior = w[:hidden], w[hidden:2 * hidden], w[2 * hidden:3 * hidden], w[3 * hidden]
        bi_preds, tree_scores = [], []
        for sub, obj, prob in zip(sub_feat.split(list(num_objs)), obj_feat.split(list(num_objs)),
                                  probs.split(list(num_objs))):
            co_prior = prob @ prior_weight @ prob.t()
            vis_prior = ((obj * w_prod) @ sub.t() + (sub @ w_sub)[None, :] + (obj @ w_obj)[:, None]
                         + w_prior * co_prior + self.vision_prior.bias)
            joint = torch.sigmoid(vis_prior) * co_prior
            bi_preds.append(joint)
            tree_scores.append(torch.sigmoid(joint))
        return bi_preds, tree_scores

    def forward(self, roi_features: torch.Tensor, proposals: Sequence[BoxList], ctx_average: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """``(obj_dists, obj_preds, edge_ctx, bi_preds)``; ``bi_preds`` are the per-image
        ``[N, N]`` logits of the binary "related" loss. ``ctx_average``: the counterfactual pass
        as for :class:`~.model_motifs.LSTMContext` (the tree is still built from the real features)."""
        if ctx_average:
            require_averages(self)
        num_objs = [len(p) for p in proposals]
        use_labels = self.training or self.mode != "sgdet"
        obj_labels = torch.cat([p.get_field("labels") for p in proposals]).long() if use_labels else None
        obj_embed = label_embedding_input(proposals, self.obj_embed1, self.mode == "predcls")
        if self.mode == "predcls":
            obj_logits = to_onehot(obj_labels, self.num_obj_classes)
        else:
            obj_logits = torch.cat([p.get_field("predict_logits") for p in proposals]).detach()
        box_info = encode_box_info(proposals)
        obj_pre_rep = torch.cat((roi_features, obj_embed, self.pos_embed(box_info)), -1)

        tree_inp = torch.cat((self.obj_reduce(roi_features.detach()), self.emb_reduce(obj_embed.detach()),
                              self.box_embed(box_info), self.overlap_embed(get_overlap_info(proposals))), -1)
        bi_preds, tree_scores = self.pair_scores(num_objs, tree_inp, obj_logits)
        forest = build_forest(tree_scores, roi_features.device)

        obj_ctx = self.obj_ctx_rnn(forest, obj_pre_rep)
        tracking = self.training and self.effect_analysis and self.track_averages
        if self.mode == "predcls":
            obj_preds = obj_labels
            obj_dists = to_onehot(obj_preds, self.num_obj_classes)
        else:
            decoder_inp = torch.cat((obj_pre_rep, obj_ctx), 1)
            if tracking:
                update_moving_average(self.untreated_dcd_feat, decoder_inp)
            if ctx_average:
                decoder_inp = untreated_rows(self.untreated_dcd_feat, decoder_inp.shape[0])
            obj_dists, obj_preds = self.decoder_rnn(forest, decoder_inp)

        edge_feat = torch.cat((self.obj_embed2(obj_preds.long()), roi_features), -1)
        if tracking:
            update_moving_average(self.untreated_obj_feat, obj_pre_rep)
            update_moving_average(self.untreated_edg_feat, edge_feat)
        if ctx_average:
            edge_feat = untreated_rows(self.untreated_edg_feat, edge_feat.shape[0])
        edge_ctx = self.edge_ctx_rnn(forest, torch.cat((edge_feat, obj_ctx), -1))
        return obj_dists, obj_preds, edge_ctx, bi_preds
