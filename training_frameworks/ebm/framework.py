"""The "EBM" training framework: the energy loss next to the relation head's own (EBM.md 1-4).

Each training batch: the GT graph (positive) and the prediction's graph refined by SGLD (negative)
are scored by the energy model; ``loss_ebm_cd`` and ``loss_ebm_l2`` join the task losses. The sample
is not detached, so the loss reaches the predictor through the sampled states, and (as in the
release, whose detach is a no-op) both energies reach the relation head's box features. The energy
model lives under ``framework_modules["EBM"]`` (trained, checkpointed and DDP-wrapped with the
head); its gradients are clipped on their own (``SeparateGradClip``). Nothing changes at test time.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch

from maskrcnn_benchmark.engine.framework import TRAINING_FRAMEWORKS, TrainingFramework
from maskrcnn_benchmark.engine.trainer import TrainHook
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch
from maskrcnn_benchmark.utils.checkpoint import unwrap_model

from .builders import noisy, positive_graph, positive_on_sampled_pairs, predicted_graph
from .clipping import SeparateGradClip
from .config import EBMSettings
from .energy_model import EnergyModel
from .loss import energy_losses
from .monitor import EnergyLog
from .sampler import SGLDSampler


@TRAINING_FRAMEWORKS.register("EBM")
class EBM(TrainingFramework):
    """Energy-based training (Suhail et al., CVPR 2021) around any predictor, in all three modes."""

    claims = frozenset()  # adds loss terms; the relation loss, weights and scores stay the head's

    def __init__(self, settings: EBMSettings) -> None:
        self.settings = settings
        self.sampler = SGLDSampler(settings.sampler)
        self.energy_log = EnergyLog(settings.energy_log)
        self.head: Any = None

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "EBM":
        return cls(EBMSettings.from_config(cfg))

    @property
    def energy_model(self) -> EnergyModel:
        return self.head.framework_modules[self.name]

    @property
    def predcls(self) -> bool:
        return self.settings.use_gt_box and self.settings.use_gt_labels

    def prepare(self, model: torch.nn.Module) -> None:
        """Bind the head and add the energy model (kept when present, e.g. a second prepare)."""
        self.head = unwrap_model(model).roi_heads.relation
        if self.name not in self.head.framework_modules:
            s = self.settings
            self.head.framework_modules[self.name] = EnergyModel(
                self.head.box_feature_extractor.out_channels, s.num_obj_classes, s.num_rel_classes,
                node_dim=s.node_dim, edge_dim=s.edge_dim, pooling_dim=s.pooling_dim, box_embed_dim=s.box_embed_dim,
                iters=s.gnn_iters, alpha=s.alpha, bn_momentum=s.bn_momentum).to(
                    next(self.head.parameters()).device)

    def relation_losses(self, batch: RelationBatch, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        s = self.settings
        features = noisy(batch.roi_features, s.data_noise, s.detach_image_features)
        negative = predicted_graph(batch.proposals, batch.rel_pair_idxs, batch.rel_logits, batch.obj_logits,
                                   features, self.predcls, s.num_obj_classes, s.data_noise, s.sampler.norm)
        if s.positive_pairs == "sampled":
            positive = positive_on_sampled_pairs(batch.proposals, batch.rel_pair_idxs, batch.rel_labels, features,
                                                 s.num_obj_classes, s.num_rel_classes, s.data_noise)
        else:
            positive = positive_graph(batch.targets, self._gt_box_features(batch, features), s.num_obj_classes,
                                      s.num_rel_classes, s.data_noise)
        negative = self.sampler.sample(self.energy_model, negative, sample_nodes=not self.predcls)
        e_pos, e_neg = self.energy_model(positive), self.energy_model(negative)
        self.energy_log.record(e_pos, e_neg)
        losses.update(energy_losses(e_pos, e_neg, s.temp, s.cd_weight, s.l2_weight))
        return losses

    def _gt_box_features(self, batch: RelationBatch, features: torch.Tensor) -> torch.Tensor:
        """Box features of the GT boxes: the proposals' own with GT boxes; in SGDet the relation head's
        box extractor on the GT boxes over the same feature maps (the release runs the frozen backbone again)."""
        if self.settings.use_gt_box:
            return features
        gt_features = self.head.box_feature_extractor(batch.features, list(batch.targets))
        return noisy(gt_features, self.settings.data_noise, self.settings.detach_image_features)

    def train_hooks(self) -> List[TrainHook]:
        return [SeparateGradClip(lambda: list(self.energy_model.parameters()), self.settings.grad_norm_clip),
                self.energy_log]

    def state(self) -> Dict[str, Any]:
        return {"ebm_energy_log": self.energy_log}
