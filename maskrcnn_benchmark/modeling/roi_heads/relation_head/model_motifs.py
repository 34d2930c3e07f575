"""MOTIFS context (Zellers et al.): object and edge BiLSTMs over objects sorted left to right,
with a highway-LSTM decoder that refines the object labels in SGCls / SGDet."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence, pad_sequence

from maskrcnn_benchmark.config.modes import check_mode
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .inference import obj_prediction_nms
from .moving_average import require_averages, untreated_rows, update_moving_average
from .utils_motifs import (dropout_mask, encode_box_info, ordering_scores, sort_within_images,
                           to_onehot)

POS_EMBED_DIM = 128


def make_pos_embed() -> nn.Sequential:
    """9-d box geometry -> 128-d position embedding (Linear, BN, Linear, ReLU)."""
    return nn.Sequential(nn.Linear(9, 32), nn.BatchNorm1d(32, momentum=0.001),
                         nn.Linear(32, POS_EMBED_DIM), nn.ReLU(inplace=True))


def make_label_embedding(vectors: torch.Tensor) -> nn.Embedding:
    """An embedding table initialised with (a copy of) ``vectors``."""
    embedding = nn.Embedding(vectors.shape[0], vectors.shape[1])
    with torch.no_grad():
        embedding.weight.copy_(vectors)
    return embedding


def label_embedding_input(proposals: Sequence[BoxList], embedding: nn.Embedding, use_gt_label: bool
                          ) -> torch.Tensor:
    """Label embedding of each box: the GT label's row (PredCls) or the detector's class
    distribution (softmax of the detached ``predict_logits``) times the table."""
    if use_gt_label:
        return embedding(torch.cat([p.get_field("labels") for p in proposals]).long())
    logits = torch.cat([p.get_field("predict_logits") for p in proposals]).detach()
    return F.softmax(logits, dim=1) @ embedding.weight


def run_in_order(lstm: nn.LSTM, feats: torch.Tensor, orders: Sequence[torch.Tensor]) -> torch.Tensor:
    """Run ``lstm`` over each image's rows in the given order; output rows in input order."""
    nonempty = [o for o in orders if o.numel()]
    if not nonempty:
        return feats.new_zeros(0, lstm.hidden_size * (2 if lstm.bidirectional else 1))
    packed_out, _ = lstm(pack_sequence([feats[o] for o in nonempty], enforce_sorted=False))
    padded, _ = pad_packed_sequence(packed_out, batch_first=True)
    flat = torch.cat([padded[i, :o.numel()] for i, o in enumerate(nonempty)])
    return flat[torch.argsort(torch.cat(nonempty))]


class DecoderRNN(nn.Module):
    """Highway LSTM that labels objects one after another, feeding back the previous label.

    Args:
        class_vectors: ``[C + 1, E]`` vectors of ``['start'] + obj_classes`` (``obj_embed``).
        inputs_dim: per-object input size (object features + object context).
        hidden_dim: LSTM size.
        dropout: rate of the per-sequence dropout mask on the outputs (training only).
    """

    def __init__(self, class_vectors: torch.Tensor, inputs_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_classes = class_vectors.shape[0] - 1
        self.embed_dim = class_vectors.shape[1]
        self.hidden_size = hidden_dim
        self.dropout = dropout
        self.obj_embed = make_label_embedding(class_vectors)
        self.input_linearity = nn.Linear(inputs_dim + self.embed_dim, 6 * hidden_dim)
        self.state_linearity = nn.Linear(hidden_dim, 5 * hidden_dim)
        self.out_obj = nn.Linear(hidden_dim, self.num_classes)
        nn.init.zeros_(self.input_linearity.bias)
        nn.init.zeros_(self.state_linearity.bias)

    def _step(self, inputs: torch.Tensor, state: torch.Tensor, memory: torch.Tensor,
              mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        gates_in = self.input_linearity(inputs)
        gates_state = self.state_linearity(state)
        i, f, g, o, r = (gates_in[:, :5 * self.hidden_size] + gates_state).chunk(5, dim=1)
        memory = torch.sigmoid(i) * torch.tanh(g) + torch.sigmoid(f) * memory
        output = torch.sigmoid(o) * torch.tanh(memory)
        highway = torch.sigmoid(r)
        output = highway * output + (1 - highway) * gates_in[:, 5 * self.hidden_size:]
        if mask is not None:
            output = output * mask
        return output, memory

    def forward(self, sequences: Sequence[torch.Tensor], labels: Optional[Sequence[torch.Tensor]] = None
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Decode each sequence (one image's objects in decoding order).

        In training ``labels`` are fed back (teacher forcing), a background label being
        replaced by the best non-background prediction; otherwise the best non-background
        prediction is fed back. Returns per-sequence logits ``[L, C]`` and labels ``[L]``.
        """
        lengths = [s.shape[0] for s in sequences]
        by_length = sorted(range(len(sequences)), key=lambda i: -lengths[i])
        nonempty = [i for i in by_length if lengths[i] > 0]
        if not nonempty:
            empty = [s.new_zeros(0, self.num_classes) for s in sequences]
            return empty, [s.new_zeros(0, dtype=torch.int64) for s in sequences]
        inputs = pad_sequence([sequences[i] for i in nonempty], batch_first=True)
        teacher = None
        if self.training:
            if labels is None:
                raise ValueError("the decoder needs labels in training")
            teacher = pad_sequence([labels[i].long() for i in nonempty], batch_first=True)
        batch = len(nonempty)
        state = inputs.new_zeros(batch, self.hidden_size)
        memory = inputs.new_zeros(batch, self.hidden_size)
        prev_embed = self.obj_embed.weight[0].expand(batch, self.embed_dim)
        mask = None
        if self.training and self.dropout > 0:
            mask = dropout_mask(self.dropout, (batch, self.hidden_size), inputs.device)
        step_dists, step_labels, step_sizes = [], [], []
        for t in range(inputs.shape[1]):
            active = sum(lengths[i] > t for i in nonempty)
            state, memory, prev_embed = state[:active], memory[:active], prev_embed[:active]
            mask = mask[:active] if mask is not None else None
            state, memory = self._step(torch.cat((inputs[:active, t], prev_embed), 1), state, memory, mask)
            dist = self.out_obj(state)
            best = dist[:, 1:].argmax(dim=1) + 1
            if teacher is not None:
                fed = teacher[:active, t]
                fed = torch.where(fed == 0, best, fed)
            else:
                fed = best
            prev_embed = self.obj_embed(fed + 1)
            step_dists.append(dist)
            step_labels.append(fed)
            step_sizes.append(active)
        flat_dists, flat_labels = torch.cat(step_dists), torch.cat(step_labels)
        step_offsets = torch.tensor([0] + step_sizes[:-1], device=inputs.device).cumsum(0)
        dists: List[torch.Tensor] = [None] * len(sequences)
        preds: List[torch.Tensor] = [None] * len(sequences)
        for position, i in enumerate(by_length):
            rows = step_offsets[:lengths[i]] + position
            dists[i], preds[i] = flat_dists[rows], flat_labels[rows]
        return dists, preds


class LSTMContext(nn.Module):
    """Object and edge contexts of MOTIFS.

    Args:
        class_vectors: ``[C + 1, E]`` word vectors of ``['start'] + obj_classes``; rows 1.. initialise
            ``obj_embed1``/``obj_embed2``, all rows the decoder's ``obj_embed``.
        in_channels: size of the ROI features.
        hidden_dim: CONTEXT_HIDDEN_DIM.
        dropout_rate: CONTEXT_DROPOUT_RATE (decoder mask; between stacked LSTM layers).
        num_obj_layers, num_edge_layers: CONTEXT_OBJ_LAYER / CONTEXT_REL_LAYER.
        mode: 'predcls', 'sgcls' or 'sgdet'.
        nms_thresh: TEST.RELATION.LATER_NMS_PREDICTION_THRES (SGDet test decoding).
        effect_analysis: CAUSAL.EFFECT_ANALYSIS; registers the moving-average ``untreated_*`` buffers,
            updated in training while ``track_averages`` (the HML teacher turns it off).
        ordering: order of the objects in the LSTMs ('leftright', 'confidence' or 'size').
    """

    def __init__(self, class_vectors: torch.Tensor, in_channels: int, hidden_dim: int = 512,
                 dropout_rate: float = 0.2, num_obj_layers: int = 1, num_edge_layers: int = 1,
                 mode: str = "predcls", nms_thresh: float = 0.3, effect_analysis: bool = False,
                 ordering: str = "leftright") -> None:
        super().__init__()
        if num_obj_layers < 1 or num_edge_layers < 1:
            raise ValueError("the object and edge LSTMs need at least one layer")
        self.mode = check_mode(mode)
        self.num_obj_classes = class_vectors.shape[0] - 1
        self.embed_dim = class_vectors.shape[1]
        self.hidden_dim = hidden_dim
        self.nms_thresh = nms_thresh
        self.effect_analysis = effect_analysis
        self.track_averages = True
        self.ordering = ordering
        obj_input_dim = in_channels + self.embed_dim + POS_EMBED_DIM

        self.obj_embed1 = make_label_embedding(class_vectors[1:])
        self.obj_embed2 = make_label_embedding(class_vectors[1:])
        self.pos_embed = make_pos_embed()
        self.obj_ctx_rnn = nn.LSTM(obj_input_dim, hidden_dim, num_layers=num_obj_layers,
                                   dropout=dropout_rate if num_obj_layers > 1 else 0.0, bidirectional=True)
        self.decoder_rnn = DecoderRNN(class_vectors, inputs_dim=obj_input_dim + hidden_dim,
                                      hidden_dim=hidden_dim, dropout=dropout_rate)
        self.edge_ctx_rnn = nn.LSTM(self.embed_dim + hidden_dim + in_channels, hidden_dim,
                                    num_layers=num_edge_layers,
                                    dropout=dropout_rate if num_edge_layers > 1 else 0.0, bidirectional=True)
        self.lin_obj_h = nn.Linear(hidden_dim * 2, hidden_dim)
        self.lin_edge_h = nn.Linear(hidden_dim * 2, hidden_dim)
        if effect_analysis:
            self.register_buffer("untreated_dcd_feat", torch.zeros(obj_input_dim + hidden_dim))
            self.register_buffer("untreated_obj_feat", torch.zeros(obj_input_dim))
            self.register_buffer("untreated_edg_feat", torch.zeros(self.embed_dim + in_channels))

    def _decode(self, decoder_inp: torch.Tensor, orders: List[torch.Tensor], proposals: Sequence[BoxList],
                obj_labels: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Object logits and labels (input order) from the decoder run in the context order."""
        labels = [obj_labels[o] for o in orders] if obj_labels is not None else None
        dists, preds = self.decoder_rnn([decoder_inp[o] for o in orders], labels)
        order = torch.cat(orders)
        inverse = torch.argsort(order)
        obj_dists = torch.cat(dists)[inverse]
        obj_preds = torch.cat(preds)[inverse]
        if self.mode == "sgdet" and not self.training:
            num_objs = [len(p) for p in proposals]
            obj_preds = torch.cat([
                obj_prediction_nms(p.get_field("boxes_per_cls"), d, self.nms_thresh) if len(p) else pr
                for p, d, pr in zip(proposals, obj_dists.split(num_objs), obj_preds.split(num_objs))])
        return obj_dists, obj_preds

    def forward(self, roi_features: torch.Tensor, proposals: Sequence[BoxList], ctx_average: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(obj_dists [sum N, C], obj_preds [sum N], edge_ctx [sum N, hidden_dim])``.

        ``ctx_average``: the counterfactual pass of causal analysis (CAUSAL.md 3.1): the decoder
        (SGCls / SGDet) and the edge LSTM read the untreated averages in place of each object's
        own features and label embedding; the object LSTM still reads the real ones.
        """
        if ctx_average:
            require_averages(self)
        num_objs = [len(p) for p in proposals]
        use_labels = self.training or self.mode != "sgdet"
        obj_labels = torch.cat([p.get_field("labels") for p in proposals]).long() if use_labels else None
        obj_embed = label_embedding_input(proposals, self.obj_embed1, self.mode == "predcls")
        pos_embed = self.pos_embed(encode_box_info(proposals))
        obj_pre_rep = torch.cat((roi_features, obj_embed, pos_embed), -1)

        logits = None
        if self.ordering == "confidence" and self.mode != "predcls":
            logits = torch.cat([p.get_field("predict_logits") for p in proposals])
        elif self.ordering == "confidence":
            logits = to_onehot(obj_labels, self.num_obj_classes)
        orders = sort_within_images(ordering_scores(proposals, self.ordering, logits), num_objs)

        obj_ctx = self.lin_obj_h(run_in_order(self.obj_ctx_rnn, obj_pre_rep, orders))
        decoder_inp = torch.cat((obj_pre_rep, obj_ctx), 1)
        tracking = self.training and self.effect_analysis and self.track_averages
        if tracking:
            update_moving_average(self.untreated_dcd_feat, decoder_inp)
        if self.mode == "predcls":
            obj_preds = obj_labels
            obj_dists = to_onehot(obj_preds, self.num_obj_classes)
        else:
            if ctx_average:
                decoder_inp = untreated_rows(self.untreated_dcd_feat, decoder_inp.shape[0])
            obj_dists, obj_preds = self._decode(decoder_inp, orders, proposals, obj_labels)

        edge_feat = torch.cat((self.obj_embed2(obj_preds.long()), roi_features), -1)
        if tracking:
            update_moving_average(self.untreated_obj_feat, obj_pre_rep)
            update_moving_average(self.untreated_edg_feat, edge_feat)
        if ctx_average:
            edge_feat = untreated_rows(self.untreated_edg_feat, edge_feat.shape[0])
        edge_ctx = self.lin_edge_h(run_in_order(self.edge_ctx_rnn, torch.cat((edge_feat, obj_ctx), -1), orders))
        return obj_dists, obj_preds, edge_ctx
