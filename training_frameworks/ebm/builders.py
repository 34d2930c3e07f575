"""The positive (ground truth) and negative (prediction) graphs of a training batch (EBM.md 2.2).

Positive: GT boxes, one-hot GT labels and GT relations (all of them, row-major), each state plus
N(0, data_noise); the image graph is the box features of the GT boxes. Negative: the relation head's
proposals and sampled pairs, edge states the normalised relation logits; node states one-hot GT
labels plus noise in PredCls (fixed while sampling) and the normalised object logits otherwise.
"""
from __future__ import annotations

from typing import Sequence

import torch

from maskrcnn_benchmark.modeling.roi_heads.relation_head.utils_motifs import encode_box_info
from maskrcnn_benchmark.structures.bounding_box import BoxList

from .graph import GraphBatch, batch_indices, global_pairs, minmax_rows, one_hot_states

def initial_states(logits: torch.Tensor, norm: str) -> torch.Tensor:
    """The sampler's start from raw logits: min-max rows (release) or softmax probabilities."""
    return minmax_rows(logits.float()) if norm == "minmax" else torch.softmax(logits.float(), dim=1)


def noisy(features: torch.Tensor, std: float, detach: bool) -> torch.Tensor:
    """``features`` plus N(0, std) noise (out of place; the release adds it in place through ``.data``)."""
    features = features.detach() if detach else features
    return features + std * torch.randn_like(features) if std > 0 else features


def _graph(image_features: torch.Tensor, boxes: Sequence[BoxList], node_states: torch.Tensor,
           edge_states: torch.Tensor, pairs: Sequence[torch.Tensor]) -> GraphBatch:
    device = image_features.device
    num_nodes = [len(b) for b in boxes]
    return GraphBatch(image_features=image_features, boxes=encode_box_info(list(boxes)).to(device),
                      node_states=node_states, edge_states=edge_states,
                      pairs=global_pairs(pairs, num_nodes).to(device), node_batch=batch_indices(num_nodes, device),
                      edge_batch=batch_indices([p.shape[0] for p in pairs], device), num_images=len(boxes))


def gt_relations(target: BoxList) -> torch.Tensor:
    """``[R, 3]`` (subject, object, predicate): the non-zero entries of the target's relation matrix, row-major."""
    relation = target.get_field("relation")
    pairs = (relation > 0).nonzero()
    return torch.cat([pairs, relation[pairs[:, 0], pairs[:, 1]].long()[:, None]], dim=1)


def positive_graph(targets: Sequence[BoxList], image_features: torch.Tensor, num_obj_classes: int,
                   num_rel_classes: int, data_noise: float) -> GraphBatch:
    """The GT graph on the GT boxes (``image_features``: their box features, already noisy)."""
    relations = [gt_relations(t) for t in targets]
    labels = torch.cat([t.get_field("labels") for t in targets]).to(image_features.device)
    predicates = torch.cat([r[:, 2] for r in relations]).to(image_features.device)
    return _graph(image_features, targets, one_hot_states(labels, num_obj_classes, data_noise),
                  one_hot_states(predicates, num_rel_classes, data_noise), [r[:, :2] for r in relations])


def positive_on_sampled_pairs(proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                              rel_labels: Sequence[torch.Tensor], image_features: torch.Tensor,
                              num_obj_classes: int, num_rel_classes: int, data_noise: float) -> GraphBatch:
    """The GT labels scored on the prediction's nodes and pairs (background pairs: predicate 0)."""
    labels = torch.cat([p.get_field("labels") for p in proposals]).to(image_features.device)
    predicates = torch.cat(list(rel_labels)).to(image_features.device)
    return _graph(image_features, proposals, one_hot_states(labels, num_obj_classes, data_noise),
                  one_hot_states(predicates, num_rel_classes, data_noise), rel_pair_idxs)


def predicted_graph(proposals: Sequence[BoxList], rel_pair_idxs: Sequence[torch.Tensor],
                    rel_logits: Sequence[torch.Tensor], obj_logits: Sequence[torch.Tensor],
                    image_features: torch.Tensor, predcls: bool, num_obj_classes: int, data_noise: float,
                    norm: str) -> GraphBatch:
    """The prediction's graph, the sampler's start. PredCls node states: one-hot GT labels (the
    proposals' ``labels``) plus noise, carrying no gradient; otherwise the normalised object logits."""
    edge_states = initial_states(torch.cat(list(rel_logits)), norm)
    if predcls:
        labels = torch.cat([p.get_field("labels") for p in proposals])
        node_states = one_hot_states(labels.to(image_features.device), num_obj_classes, data_noise)
    else:
        node_states = initial_states(torch.cat(list(obj_logits)), norm)
    return _graph(image_features, proposals, node_states, edge_states, rel_pair_idxs)
