"""CausalAnalysisPredictor (Tang et al., CVPR 2020): visual, context and frequency branches fused
by sum or gate, and at test time the Total Direct Effect and its relatives (CAUSAL.md).

Training adds the auxiliary cross-entropies of the branches and moves the "untreated" averages
of the inputs. At test time with an EFFECT_TYPE other than none, a second (counterfactual) pass
of the context reads those averages, and the returned logits are a difference of two fusions:

- TDE = L(v, c, z) - L(v, c_avg, z)
- NIE = L(v, c_avg, z) - L(v, c_avg, z_avg)
- TE  = L(v, c, z) - L(v, c_avg, z_avg)

with v the union features, c the pair context (times the spatial terms), z the pair's class
distributions, and the frequency term looked up by probability. ``none`` returns the training
logits (hard-label frequency lookup). The module names and shapes are the benchmark's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.config.modes import mode_from_config
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .freq_bias import FrequencyBias
from .model_motifs import LSTMContext
from .model_vctree import VCTreeLSTMContext
from .model_vtranse import VTransEFeature
from .moving_average import update_moving_average
from .roi_relation_predictors import (PredictorOutput, check_statistics, class_vectors_from_config,
                                      global_pair_indices, split_per_image)
from .utils_causal import PAIR_BOX_DIM, box_pair_info, normalised_box_info
from .utils_motifs import normal_init, xavier_init

CONTEXT_LAYERS = ("motifs", "vctree", "vtranse")
FUSION_TYPES = ("sum", "gate")
EFFECT_TYPES = ("none", "TDE", "NIE", "TE")


def _check_choice(key: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.CAUSAL.{key} should be one of {', '.join(choices)}, got {value!r}")
    return value


def make_context_layer(name: str, class_vectors: torch.Tensor, in_channels: int, pred_dist: torch.Tensor,
                       hidden_dim: int, effect_analysis: bool, **context_kwargs: Any) -> nn.Module:
    """The CONTEXT_LAYER ``name``: MOTIFS' LSTMContext, VCTree's context or VTransEFeature."""
    _check_choice("CONTEXT_LAYER", name, CONTEXT_LAYERS)
    common = dict(hidden_dim=hidden_dim, effect_analysis=effect_analysis, **context_kwargs)
    if name == "motifs":
        return LSTMContext(class_vectors, in_channels, **common)
    if name == "vctree":
        return VCTreeLSTMContext(class_vectors, in_channels, pred_dist, **common)
    return VTransEFeature(class_vectors, in_channels, **common)


@dataclass
class PairTerms:
    """One pass of the context layer, per pair of the batch (per object for ``obj_dists``)."""

    ctx: torch.Tensor  # [R, P] pair context (post_cat, or head - tail for vtranse), before the spatial terms
    labels: torch.Tensor  # [R, 2] predicted subject / object labels
    probs: torch.Tensor  # [R, C, 2] subject / object class distributions
    boxes: torch.Tensor  # [R, 32] box-pair geometry
    obj_dists: torch.Tensor  # [N, C] object logits
    bi_preds: Optional[List[torch.Tensor]]  # VCTree's per-image [n, n] relatedness logits


class CausalAnalysisPredictor(nn.Module):
    """The benchmark's causal predictor.

    Args:
        class_vectors: ``[C_obj + 1, E]`` word vectors of ``['start'] + obj_classes``.
        num_rel_classes: predicates with background.
        in_channels: ROI feature size (MLP_HEAD_DIM).
        pred_dist: ``[C_obj, C_obj, C_rel]`` statistics of the frequency bias (and VCTree's prior).
        hidden_dim, pooling_dim: CONTEXT_HIDDEN_DIM, CONTEXT_POOLING_DIM.
        union_dim: size of the union features (MLP_HEAD_DIM); must equal ``pooling_dim`` (no ``up_dim``).
        context_layer: 'motifs', 'vctree' or 'vtranse'.
        fusion_type: 'sum' (vis + ctx + frq, with three auxiliary losses) or 'gate'
            (ctx * sigmoid(vis + frq + gate(ctx)), with the context's auxiliary loss only).
        separate_spatial: the union features arrive as (appearance, layout); the layout multiplies
            the context.
        spatial_for_vision: ``spt_emb`` of the 32-d box-pair geometry multiplies the context.
        effect_analysis: register the context layer's untreated averages (needed by every effect).
        effect_type: 'none', 'TDE', 'NIE' or 'TE' (test time only).
        context_kwargs: passed to the context layer (mode, dropout_rate, ...).
    """

    def __init__(self, class_vectors: torch.Tensor, num_rel_classes: int, in_channels: int,
                 pred_dist: torch.Tensor, hidden_dim: int = 512, pooling_dim: int = 4096, union_dim: int = 4096,
                 context_layer: str = "motifs", fusion_type: str = "sum", separate_spatial: bool = False,
                 spatial_for_vision: bool = False, effect_analysis: bool = False, effect_type: str = "none",
                 **context_kwargs: Any) -> None:
        super().__init__()
        if pooling_dim != union_dim:
            raise ValueError(f"CausalAnalysisPredictor needs CONTEXT_POOLING_DIM ({pooling_dim}) equal to "
                             f"MLP_HEAD_DIM ({union_dim}): it has no up_dim layer")
        self.context_name = context_layer
        self.fusion_type = _check_choice("FUSION_TYPE", fusion_type, FUSION_TYPES)
        self.separate_spatial = separate_spatial
        self.spatial_for_vision = spatial_for_vision
        self.effect_analysis = effect_analysis
        self.effect_type = effect_type
        self.track_averages = True
        self.use_vtranse = context_layer == "vtranse"
        self.context_layer = make_context_layer(context_layer, class_vectors, in_channels, pred_dist, hidden_dim,
                                                effect_analysis, **context_kwargs)
        # Creation and initialisation in the benchmark's order.
        if self.use_vtranse:
            self.post_emb = nn.Linear(hidden_dim, pooling_dim * 2)
            self.ctx_compress = nn.Linear(pooling_dim, num_rel_classes, bias=False)
        else:
            self.post_emb = nn.Linear(hidden_dim, hidden_dim * 2)
            self.post_cat = nn.Sequential(nn.Linear(hidden_dim * 2, pooling_dim), nn.ReLU(inplace=True))
            self.ctx_compress = nn.Linear(pooling_dim, num_rel_classes)
        self.vis_compress = nn.Linear(pooling_dim, num_rel_classes)
        if self.fusion_type == "gate":
            self.ctx_gate_fc = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        normal_init(self.post_emb, 10.0 * math.sqrt(1.0 / hidden_dim))
        if not self.use_vtranse:
            xavier_init(self.post_cat[0])
            xavier_init(self.ctx_compress)
        xavier_init(self.vis_compress)
        self.freq_bias = FrequencyBias(pred_dist)
        if spatial_for_vision:
            self.spt_emb = nn.Sequential(xavier_init(nn.Linear(PAIR_BOX_DIM, hidden_dim)), nn.ReLU(inplace=True),
                                         xavier_init(nn.Linear(hidden_dim, pooling_dim)), nn.ReLU(inplace=True))
        # Registered whatever EFFECT_ANALYSIS says, as in the benchmark; avg_post_ctx and
        # untreated_feat are tracked but no effect reads them.
        self.register_buffer("untreated_spt", torch.zeros(PAIR_BOX_DIM))
        self.register_buffer("untreated_conv_spt", torch.zeros(pooling_dim))
        self.register_buffer("avg_post_ctx", torch.zeros(pooling_dim))
        self.register_buffer("untreated_feat", torch.zeros(pooling_dim))

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics: Mapping[str, Any]) -> "CausalAnalysisPredictor":
        check_statistics(cfg, statistics)
        head = cfg.MODEL.ROI_RELATION_HEAD
        causal = head.CAUSAL
        context_kwargs: Dict[str, Any] = {"mode": mode_from_config(cfg)}
        if causal.CONTEXT_LAYER in ("motifs", "vctree"):
            context_kwargs.update(dropout_rate=head.CONTEXT_DROPOUT_RATE, num_obj_layers=head.CONTEXT_OBJ_LAYER,
                                  num_edge_layers=head.CONTEXT_REL_LAYER)
        if causal.CONTEXT_LAYER == "motifs":
            context_kwargs["nms_thresh"] = cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES
        return cls(class_vectors_from_config(cfg, statistics["obj_classes"]), head.NUM_CLASSES, in_channels,
                   torch.as_tensor(statistics["pred_dist"]), hidden_dim=head.CONTEXT_HIDDEN_DIM,
                   pooling_dim=head.CONTEXT_POOLING_DIM, union_dim=cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM,
                   context_layer=causal.CONTEXT_LAYER, fusion_type=causal.FUSION_TYPE,
                   separate_spatial=causal.SEPARATE_SPATIAL, spatial_for_vision=causal.SPATIAL_FOR_VISION,
                   effect_analysis=causal.EFFECT_ANALYSIS, effect_type=causal.EFFECT_TYPE, **context_kwargs)

    @property
    def effect_type(self) -> str:
        return self._effect_type

    @effect_type.setter
    def effect_type(self, value: str) -> None:
        _check_choice("EFFECT_TYPE", value, EFFECT_TYPES)
        if value != "none" and not self.effect_analysis:
            raise ValueError(f"EFFECT_TYPE {value} needs the untreated averages: train and test with "
                             "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS True")
        self._effect_type = value

    def pair_terms(self, roi_features: torch.Tensor, proposals: Sequence[BoxList],
                   rel_pair_idxs: Sequence[torch.Tensor], ctx_average: bool = False) -> PairTerms:
        """The context layer's pass (the counterfactual one with ``ctx_average``), read per pair."""
        outputs = self.context_layer(roi_features, proposals, ctx_average=ctx_average)
        obj_dists, obj_preds, edge_ctx = outputs[:3]
        sub, obj = global_pair_indices([len(p) for p in proposals], rel_pair_idxs, edge_ctx.device)
        head_rep, tail_rep = self.post_emb(edge_ctx).chunk(2, dim=1)
        if self.use_vtranse:
            ctx = head_rep[sub] - tail_rep[obj]
        else:
            ctx = self.post_cat(torch.cat((head_rep[sub], tail_rep[obj]), dim=-1))
        probs = F.softmax(obj_dists, dim=-1)
        boxes = normalised_box_info(proposals)
        return PairTerms(ctx=ctx, labels=torch.stack((obj_preds[sub], obj_preds[obj]), dim=1),
                         probs=torch.stack((probs[sub], probs[obj]), dim=2),
                         boxes=box_pair_info(boxes[sub], boxes[obj]), obj_dists=obj_dists,
                         bi_preds=outputs[3] if self.context_name == "vctree" else None)

    def fuse(self, vis_dists: torch.Tensor, ctx: torch.Tensor, frq_dists: torch.Tensor) -> torch.Tensor:
        """The relation logits from the visual logits ``vis_compress(v)``, the pair context and the
        frequency logits (the benchmark's ``calculate_logits``)."""
        ctx_dists = self.ctx_compress(ctx)
        if self.fusion_type == "gate":
            return ctx_dists * torch.sigmoid(vis_dists + frq_dists + self.ctx_gate_fc(ctx))
        return vis_dists + ctx_dists + frq_dists

    def forward(self, proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                rel_labels: Optional[Sequence[torch.Tensor]], rel_binarys: Optional[Sequence[torch.Tensor]],
                roi_features: torch.Tensor, union_features: Any, logger=None) -> PredictorOutput:
        if union_features is None:
            raise ValueError("CausalAnalysisPredictor needs union features (PREDICT_USE_VISION True)")
        spatial = None
        if self.separate_spatial:
            union_features, spatial = union_features
        terms = self.pair_terms(roi_features, proposals, rel_pair_idxs)
        ctx = terms.ctx
        if spatial is not None:
            ctx = ctx * spatial
        if self.spatial_for_vision:
            ctx = ctx * self.spt_emb(terms.boxes)
        vis_dists = self.vis_compress(union_features)
        label_frq = self.freq_bias.index_with_labels(terms.labels)
        rel_dists = self.fuse(vis_dists, ctx, label_frq)
        add_losses: Dict[str, torch.Tensor] = {}
        if self.training:
            add_losses = self._auxiliary_losses(terms, ctx, vis_dists, label_frq, rel_labels, rel_binarys)
            if self.track_averages:
                self._update_averages(terms, ctx, union_features, spatial)
        elif self.effect_type != "none":
            rel_dists = self._effect(roi_features, proposals, rel_pair_idxs, terms, ctx, vis_dists)
        return (*split_per_image(terms.obj_dists, rel_dists, proposals, rel_pair_idxs), add_losses)

    def _auxiliary_losses(self, terms: PairTerms, ctx: torch.Tensor, vis_dists: torch.Tensor,
                          label_frq: torch.Tensor, rel_labels: Optional[Sequence[torch.Tensor]],
                          rel_binarys: Optional[Sequence[torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """Each branch on its own against the labels (the context's only, for gate), and VCTree's binary loss."""
        if rel_labels is None:
            raise ValueError("CausalAnalysisPredictor needs rel_labels in training")
        labels = torch.cat(list(rel_labels)).long()
        losses = {"auxiliary_ctx": F.cross_entropy(self.ctx_compress(ctx), labels)}
        if self.fusion_type != "gate":
            losses["auxiliary_vis"] = F.cross_entropy(vis_dists, labels)
            losses["auxiliary_frq"] = F.cross_entropy(label_frq, labels)
        if terms.bi_preds is not None:
            if rel_binarys is None:
                raise ValueError("the VCTree context needs rel_binarys in training")
            binary = [F.binary_cross_entropy_with_logits(pred, (gt > 0).float())
                      for pred, gt in zip(terms.bi_preds, rel_binarys)]
            losses["binary_loss"] = sum(binary) / len(binary)
        return losses

    def _update_averages(self, terms: PairTerms, ctx: torch.Tensor, union_features: torch.Tensor,
                         spatial: Optional[torch.Tensor]) -> None:
        if self.spatial_for_vision:
            update_moving_average(self.untreated_spt, terms.boxes)
        if spatial is not None:
            update_moving_average(self.untreated_conv_spt, spatial)
        update_moving_average(self.avg_post_ctx, ctx)
        update_moving_average(self.untreated_feat, union_features)

    def _effect(self, roi_features: torch.Tensor, proposals: Sequence[BoxList],
                rel_pair_idxs: Sequence[torch.Tensor], terms: PairTerms, ctx: torch.Tensor,
                vis_dists: torch.Tensor) -> torch.Tensor:
        """The EFFECT_TYPE logits: factual minus counterfactual fusions, frequency by probability."""
        self._check_trained_averages()
        with torch.no_grad():
            average = self.pair_terms(roi_features, proposals, rel_pair_idxs, ctx_average=True)
            avg_ctx = average.ctx
            if self.spatial_for_vision:
                avg_ctx = avg_ctx * self.spt_emb(self.untreated_spt.view(1, -1))
            if self.separate_spatial:
                avg_ctx = avg_ctx * self.untreated_conv_spt.view(1, -1)
        frq = self.freq_bias.index_with_probability(terms.probs)
        if self.effect_type == "TDE":
            return self.fuse(vis_dists, ctx, frq) - self.fuse(vis_dists, avg_ctx, frq)
        untreated = self.fuse(vis_dists, avg_ctx, self.freq_bias.index_with_probability(average.probs))
        if self.effect_type == "NIE":
            return self.fuse(vis_dists, avg_ctx, frq) - untreated
        return self.fuse(vis_dists, ctx, frq) - untreated

    def _check_trained_averages(self) -> None:
        """Every average the counterfactual reads must have moved from its zero start."""
        names = ["context_layer.untreated_edg_feat"]
        if self.use_vtranse:
            names.append("context_layer.untreated_obj_feat")
        elif self.context_layer.mode != "predcls":
            names.append("context_layer.untreated_dcd_feat")
        if self.spatial_for_vision:
            names.append("untreated_spt")
        if self.separate_spatial:
            names.append("untreated_conv_spt")
        buffers = dict(self.named_buffers())
        untrained = [name for name in names if not bool(buffers[name].any())]
        if untrained:
            raise RuntimeError(f"EFFECT_TYPE {self.effect_type} reads moving averages that are all zero "
                               f"({', '.join(untrained)}): the model was not trained with "
                               "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS True, or its checkpoint lacks "
                               "them. Test it with EFFECT_TYPE none, or train it with EFFECT_ANALYSIS True")
