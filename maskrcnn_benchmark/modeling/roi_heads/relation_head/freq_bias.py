"""Frequency bias: a trainable log-frequency prior over predicates for each (subject, object) class pair."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn


class FrequencyBias(nn.Module):
    """Logit bias ``pred_dist[s, o]`` looked up by the class pair (``obj_baseline``: [C*C, P]).

    Args:
        pred_dist: ``[C, C, P]`` log predicate frequencies per (subject class, object class),
            the ``pred_dist`` of the dataset statistics. It initialises the embedding, which
            then trains with the rest of the predictor, as in the benchmark.
    """

    def __init__(self, pred_dist: torch.Tensor) -> None:
        super().__init__()
        if pred_dist.dim() != 3 or pred_dist.shape[0] != pred_dist.shape[1]:
            raise ValueError(f"pred_dist should be [C, C, P], got {tuple(pred_dist.shape)}")
        self.num_objs = pred_dist.shape[0]
        self.num_rels = pred_dist.shape[2]
        self.obj_baseline = nn.Embedding(self.num_objs * self.num_objs, self.num_rels)
        with torch.no_grad():
            self.obj_baseline.weight.copy_(pred_dist.float().reshape(-1, self.num_rels))

    @classmethod
    def from_statistics(cls, statistics: Mapping[str, Any]) -> "FrequencyBias":
        return cls(torch.as_tensor(statistics["pred_dist"]))

    def index_with_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """``[R, P]`` bias for ``[R, 2]`` (subject label, object label) pairs."""
        labels = labels.long()
        return self.obj_baseline(labels[:, 0] * self.num_objs + labels[:, 1])

    def index_with_probability(self, pair_prob: torch.Tensor) -> torch.Tensor:
        """``[R, P]`` expected bias under ``[R, C, 2]`` subject / object class distributions."""
        joint = pair_prob[:, :, 0].unsqueeze(2) * pair_prob[:, :, 1].unsqueeze(1)
        return joint.reshape(pair_prob.shape[0], -1) @ self.obj_baseline.weight

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.index_with_labels(labels)
