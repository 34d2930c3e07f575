"""The benchmark's relation predictors: MotifPredictor, VCTreePredictor, TransformerPredictor, IMPPredictor.

Every predictor is built from explicit arguments (or from a config with ``from_config``) and is
called as the benchmark calls it::

    obj_dists, rel_dists, add_losses = predictor(proposals, rel_pair_idxs, rel_labels, rel_binarys,
                                                 roi_features, union_features)

``obj_dists`` and ``rel_dists`` are tuples with one ``[N_i, C_obj]`` / ``[R_i, C_rel]`` logit tensor
per image; ``add_losses`` holds predictor-specific training losses (VCTree's ``binary_loss``).
Proposals carry ``labels`` (PredCls, and in training), ``predict_logits`` (SGCls / SGDet) and
``boxes_per_cls`` (SGDet test). Module names and shapes follow the benchmark, so its checkpoints load.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.config.modes import mode_from_config
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .freq_bias import FrequencyBias
from .model_motifs import LSTMContext
from .model_msg_passing import IMPContext
from .model_transformer import TransformerContext
from .model_vctree import VCTreeLSTMContext
from .utils_motifs import normal_init, xavier_init
from .word_vectors import obj_edge_vectors

PredictorOutput = Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...], Dict[str, torch.Tensor]]
IMP_HIDDEN_DIM = 512


def class_vectors_from_config(cfg, obj_classes: Sequence[str]) -> torch.Tensor:
    """``[C + 1, EMBED_DIM]`` word vectors of ``['start'] + obj_classes`` read from GLOVE_DIR."""
    return obj_edge_vectors(["start"] + list(obj_classes), cfg.GLOVE_DIR, cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM)


def check_statistics(cfg, statistics: Mapping[str, Any]) -> None:
    """The class lists of the dataset statistics must match the configured class counts."""
    expected = {"obj_classes": cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES,
                "rel_classes": cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES}
    for key, count in expected.items():
        if len(statistics[key]) != count:
            raise ValueError(f"statistics have {len(statistics[key])} {key} but the config expects {count}")


def context_predictor_args(cfg, in_channels: int, statistics: Mapping[str, Any],
                           always_bias: bool = False) -> Dict[str, Any]:
    """The constructor arguments that MOTIFS, VCTree and Transformer read alike from the config:
    class word vectors, class counts, dimensions, PREDICT_USE_VISION / PREDICT_USE_BIAS, mode."""
    check_statistics(cfg, statistics)
    head = cfg.MODEL.ROI_RELATION_HEAD
    use_bias = always_bias or head.PREDICT_USE_BIAS
    return dict(class_vectors=class_vectors_from_config(cfg, statistics["obj_classes"]),
                num_rel_classes=head.NUM_CLASSES, in_channels=in_channels,
                pred_dist=torch.as_tensor(statistics["pred_dist"]) if use_bias else None,
                hidden_dim=head.CONTEXT_HIDDEN_DIM, pooling_dim=head.CONTEXT_POOLING_DIM,
                union_dim=cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM, use_vision=head.PREDICT_USE_VISION,
                mode=mode_from_config(cfg))


def global_pair_indices(num_objs: Sequence[int], rel_pair_idxs: Sequence[torch.Tensor], device: torch.device
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(sub [sum R], obj [sum R])``: each pair's subject and object as rows of the whole batch's objects."""
    offsets = torch.tensor([0] + list(num_objs[:-1]), device=device).cumsum(0)
    sub = torch.cat([pairs[:, 0].long() + off for pairs, off in zip(rel_pair_idxs, offsets)])
    obj = torch.cat([pairs[:, 1].long() + off for pairs, off in zip(rel_pair_idxs, offsets)])
    return sub, obj


def pair_inputs(edge_ctx: torch.Tensor, obj_preds: torch.Tensor, post_emb: nn.Linear, num_objs: Sequence[int],
                rel_pair_idxs: Sequence[torch.Tensor], relu: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(prod_rep [sum R, 2 h], pair_pred [sum R, 2])``: each pair's subject ("head") and object
    ("tail") halves of ``post_emb(edge_ctx)`` side by side, and the pair's predicted labels."""
    edge_rep = post_emb(edge_ctx)
    if relu:
        edge_rep = F.relu(edge_rep)
    head_rep, tail_rep = edge_rep.chunk(2, dim=1)
    sub, obj = global_pair_indices(num_objs, rel_pair_idxs, edge_ctx.device)
    return torch.cat((head_rep[sub], tail_rep[obj]), dim=-1), torch.stack((obj_preds[sub], obj_preds[obj]), dim=1)


def split_per_image(obj_dists: torch.Tensor, rel_dists: torch.Tensor, proposals: Sequence[BoxList],
                    rel_pair_idxs: Sequence[torch.Tensor]) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
    """The batch's object and relation logits cut into one tensor per image."""
    return (obj_dists.split([len(p) for p in proposals], dim=0),
            rel_dists.split([r.shape[0] for r in rel_pair_idxs], dim=0))


class _ContextPredictor(nn.Module):
    """Shared pieces: the pairwise head (``post_emb`` -> head/tail -> ``post_cat``, x union features)
    and ``up_dim``, which IMP uses too."""

    def _init_pairwise(self, hidden_dim: int, pooling_dim: int) -> None:
        self.hidden_dim = hidden_dim
        self.pooling_dim = pooling_dim
        self.post_emb = normal_init(nn.Linear(hidden_dim, hidden_dim * 2), 10.0 * math.sqrt(1.0 / hidden_dim))
        self.post_cat = xavier_init(nn.Linear(hidden_dim * 2, pooling_dim))

    def _init_heads(self, context_layer: nn.Module, num_rel_classes: int, hidden_dim: int, pooling_dim: int,
                    union_dim: int, use_vision: bool, pred_dist: Optional[torch.Tensor],
                    ctx_compress: bool = False) -> None:
        """MOTIFS' and the Transformer's layers after their context, created in the benchmark's order
        (so a seed gives the same weights): pairwise head, ``rel_compress``, the Transformer's
        ``ctx_compress`` on the pair representation, ``up_dim``, frequency bias."""
        self.use_vision = use_vision
        self.use_bias = pred_dist is not None
        self.context_layer = context_layer
        self._init_pairwise(hidden_dim, pooling_dim)
        self.rel_compress = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        self.has_ctx_compress = ctx_compress
        if ctx_compress:
            self.ctx_compress = xavier_init(nn.Linear(hidden_dim * 2, num_rel_classes))
        self._init_up_dim(pooling_dim, union_dim)
        if self.use_bias:
            self.freq_bias = FrequencyBias(pred_dist)

    def _heads_forward(self, proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                       roi_features: torch.Tensor, union_features: Optional[torch.Tensor]) -> PredictorOutput:
        """The forward of the layers of ``_init_heads``: ``rel_compress(post_cat(pairs) * union)``,
        plus ``ctx_compress(pairs)`` when built, plus the frequency bias when used."""
        obj_dists, obj_preds, edge_ctx = self.context_layer(roi_features, proposals)
        prod_rep, pair_pred = pair_inputs(edge_ctx, obj_preds, self.post_emb, [len(p) for p in proposals],
                                          rel_pair_idxs)
        visual_rep = self.post_cat(prod_rep)
        if self.use_vision:
            visual_rep = visual_rep * self._union(union_features)
        rel_dists = self.rel_compress(visual_rep)
        if self.has_ctx_compress:
            rel_dists = rel_dists + self.ctx_compress(prod_rep)
        if self.use_bias:
            rel_dists = rel_dists + self.freq_bias.index_with_labels(pair_pred)
        return (*split_per_image(obj_dists, rel_dists, proposals, rel_pair_idxs), {})

    def _init_up_dim(self, pooling_dim: int, union_dim: int) -> None:
        """``up_dim`` maps union features to CONTEXT_POOLING_DIM when it differs from MLP_HEAD_DIM."""
        self.union_single_not_match = pooling_dim != union_dim
        if self.union_single_not_match:
            self.up_dim = xavier_init(nn.Linear(union_dim, pooling_dim))

    def _union(self, union_features: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if union_features is None or not self.union_single_not_match:
            return union_features
        return self.up_dim(union_features)


class MotifPredictor(_ContextPredictor):
    """MOTIFS: ``rel_compress(post_cat([head_s; tail_o]) * union) + freq_bias[s, o]``.

    Args:
        class_vectors: ``[C_obj + 1, E]`` word vectors of ``['start'] + obj_classes``.
        num_rel_classes: predicates with background (51).
        in_channels: ROI feature size (MLP_HEAD_DIM).
        pred_dist: ``[C_obj, C_obj, C_rel]`` statistics for the frequency bias (None without bias).
        hidden_dim, pooling_dim: CONTEXT_HIDDEN_DIM, CONTEXT_POOLING_DIM.
        union_dim: size of the union features (MLP_HEAD_DIM); ``up_dim`` exists when it differs
            from ``pooling_dim``.
        use_vision: multiply in the union features (PREDICT_USE_VISION).
        context_kwargs: passed to :class:`~.model_motifs.LSTMContext` (mode, dropout_rate, ...).
    """

    def __init__(self, class_vectors: torch.Tensor, num_rel_classes: int, in_channels: int,
                 pred_dist: Optional[torch.Tensor], hidden_dim: int = 512, pooling_dim: int = 4096,
                 union_dim: int = 4096, use_vision: bool = True, **context_kwargs: Any) -> None:
        super().__init__()
        self._init_heads(LSTMContext(class_vectors, in_channels, hidden_dim=hidden_dim, **context_kwargs),
                         num_rel_classes, hidden_dim, pooling_dim, union_dim, use_vision, pred_dist)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics: Mapping[str, Any]) -> "MotifPredictor":
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(**context_predictor_args(cfg, in_channels, statistics),
                   dropout_rate=head.CONTEXT_DROPOUT_RATE, num_obj_layers=head.CONTEXT_OBJ_LAYER,
                   num_edge_layers=head.CONTEXT_REL_LAYER,
                   nms_thresh=cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES,
                   effect_analysis=head.CAUSAL.EFFECT_ANALYSIS)

    def forward(self, proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                rel_labels: Optional[Sequence[torch.Tensor]], rel_binarys: Optional[Sequence[torch.Tensor]],
                roi_features: torch.Tensor, union_features: Optional[torch.Tensor], logger=None) -> PredictorOutput:
        return self._heads_forward(proposals, rel_pair_idxs, roi_features, union_features)


class VCTreePredictor(_ContextPredictor):
    """VCTree: ``ctx_compress(post_cat(relu(post_emb) pairs) * union) + freq_bias`` plus, in
    training, ``binary_loss`` = mean over images of BCE(tree logits, symmetric "related" matrix).

    Args: as :class:`MotifPredictor`, except that ``pred_dist`` is required (the frequency bias and
    the tree's co-occurrence prior always use it) and ``context_kwargs`` go to
    :class:`~.model_vctree.VCTreeLSTMContext`.
    """

    def __init__(self, class_vectors: torch.Tensor, num_rel_classes: int, in_channels: int,
                 pred_dist: torch.Tensor, hidden_dim: int = 512, pooling_dim: int = 4096,
                 union_dim: int = 4096, use_vision: bool = True, **context_kwargs: Any) -> None:
        super().__init__()
        self.use_vision = use_vision
        self.context_layer = VCTreeLSTMContext(class_vectors, in_channels, pred_dist, hidden_dim=hidden_dim,
                                               **context_kwargs)
        self._init_pairwise(hidden_dim, pooling_dim)
        self.ctx_compress = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        self._init_up_dim(pooling_dim, union_dim)
        self.freq_bias = FrequencyBias(pred_dist)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics: Mapping[str, Any]) -> "VCTreePredictor":
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(**context_predictor_args(cfg, in_channels, statistics, always_bias=True),
                   dropout_rate=head.CONTEXT_DROPOUT_RATE, num_obj_layers=head.CONTEXT_OBJ_LAYER,
                   num_edge_layers=head.CONTEXT_REL_LAYER, effect_analysis=head.CAUSAL.EFFECT_ANALYSIS)

    def forward(self, proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                rel_labels: Optional[Sequence[torch.Tensor]], rel_binarys: Optional[Sequence[torch.Tensor]],
                roi_features: torch.Tensor, union_features: Optional[torch.Tensor], logger=None) -> PredictorOutput:
        obj_dists, obj_preds, edge_ctx, bi_preds = self.context_layer(roi_features, proposals)
        prod_rep, pair_pred = pair_inputs(edge_ctx, obj_preds, self.post_emb, [len(p) for p in proposals],
                                          rel_pair_idxs, relu=True)
        prod_rep = self.post_cat(prod_rep)
        if self.use_vision:
            prod_rep = prod_rep * self._union(union_features)
        rel_dists = self.ctx_compress(prod_rep) + self.freq_bias.index_with_labels(pair_pred)
        add_losses: Dict[str, torch.Tensor] = {}
        if self.training:
            if rel_binarys is None:
                raise ValueError("VCTreePredictor needs rel_binarys in training")
            losses: List[torch.Tensor] = [F.binary_cross_entropy_with_logits(pred, (gt > 0).float())
                                          for pred, gt in zip(bi_preds, rel_binarys)]
            add_losses["binary_loss"] = sum(losses) / len(losses)
        return (*split_per_image(obj_dists, rel_dists, proposals, rel_pair_idxs), add_losses)


class TransformerPredictor(_ContextPredictor):
    """Transformer: ``rel_compress(post_cat(pairs) * union) + ctx_compress(pairs) + freq_bias``.

    Args: as :class:`MotifPredictor`; ``context_kwargs`` go to
    :class:`~.model_transformer.TransformerContext` (obj_layers, edge_layers, num_head, ...).
    """

    def __init__(self, class_vectors: torch.Tensor, num_rel_classes: int, in_channels: int,
                 pred_dist: Optional[torch.Tensor], hidden_dim: int = 512, pooling_dim: int = 4096,
                 union_dim: int = 4096, use_vision: bool = True, **context_kwargs: Any) -> None:
        super().__init__()
        self._init_heads(TransformerContext(class_vectors, in_channels, hidden_dim=hidden_dim, **context_kwargs),
                         num_rel_classes, hidden_dim, pooling_dim, union_dim, use_vision, pred_dist,
                         ctx_compress=True)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics: Mapping[str, Any]) -> "TransformerPredictor":
        tr = cfg.MODEL.ROI_RELATION_HEAD.TRANSFORMER
        return cls(**context_predictor_args(cfg, in_channels, statistics),
                   obj_layers=tr.OBJ_LAYER, edge_layers=tr.REL_LAYER, num_head=tr.NUM_HEAD,
                   inner_dim=tr.INNER_DIM, key_dim=tr.KEY_DIM, val_dim=tr.VAL_DIM, dropout_rate=tr.DROPOUT_RATE,
                   nms_thresh=cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)

    def forward(self, proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                rel_labels: Optional[Sequence[torch.Tensor]], rel_binarys: Optional[Sequence[torch.Tensor]],
                roi_features: torch.Tensor, union_features: Optional[torch.Tensor], logger=None) -> PredictorOutput:
        return self._heads_forward(proposals, rel_pair_idxs, roi_features, union_features)


class IMPPredictor(_ContextPredictor):
    """IMP: relation logits from message passing over union features; no frequency bias.

    Args:
        num_obj_classes, num_rel_classes: class counts with background.
        in_channels: ROI feature size; pooling_dim: CONTEXT_POOLING_DIM; union_dim: MLP_HEAD_DIM.
        hidden_dim: GRU size (512 in the benchmark whatever CONTEXT_HIDDEN_DIM says).
        mode: 'predcls', 'sgcls' or 'sgdet'.
    """

    def __init__(self, num_obj_classes: int, num_rel_classes: int, in_channels: int, pooling_dim: int = 4096,
                 union_dim: int = 4096, hidden_dim: int = IMP_HIDDEN_DIM, mode: str = "predcls") -> None:
        super().__init__()
        self.context_layer = IMPContext(num_obj_classes, num_rel_classes, in_channels, pooling_dim,
                                        hidden_dim=hidden_dim, mode=mode)
        self._init_up_dim(pooling_dim, union_dim)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics: Mapping[str, Any]) -> "IMPPredictor":
        check_statistics(cfg, statistics)
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, head.NUM_CLASSES, in_channels,
                   pooling_dim=head.CONTEXT_POOLING_DIM, union_dim=cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM,
                   mode=mode_from_config(cfg))

    def forward(self, proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                rel_labels: Optional[Sequence[torch.Tensor]], rel_binarys: Optional[Sequence[torch.Tensor]],
                roi_features: torch.Tensor, union_features: torch.Tensor, logger=None) -> PredictorOutput:
        if union_features is None:
            raise ValueError("IMPPredictor needs union features (PREDICT_USE_VISION True)")
        obj_dists, rel_dists = self.context_layer(roi_features, proposals, self._union(union_features),
                                                  rel_pair_idxs)
        return (*split_per_image(obj_dists, rel_dists, proposals, rel_pair_idxs), {})
