"""The ROI box head: detector training/testing, and box features for the relation modes."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.config.modes import RELATION_MODES, detector_mode_from_config
from maskrcnn_benchmark.structures import BoxList

from .inference import PostProcessor, make_roi_box_post_processor
from .loss import FastRCNNLossComputation, make_roi_box_loss_evaluator
from .roi_box_feature_extractors import make_roi_box_feature_extractor
from .roi_box_predictors import make_roi_box_predictor
from .sampling import FastRCNNSampling, make_roi_box_samp_processor

def add_predict_logits(proposals: Sequence[BoxList], class_logits: torch.Tensor) -> List[BoxList]:
    """Give each image's proposals their rows of ``class_logits`` as field ``predict_logits``."""
    for proposal, logits in zip(proposals, class_logits.split([len(p) for p in proposals])):
        proposal.add_field("predict_logits", logits)
    return list(proposals)


class ROIBoxHead(nn.Module):
    """``feature_extractor`` + ``predictor`` with sampling, losses and post-processing.

    ``relation_mode`` None: Faster R-CNN. Training samples RoIs and returns
    ``loss_classifier`` / ``loss_box_reg``; testing returns detections.
    In the relation modes there is never a loss, in training or testing:
    - "predcls": the ground-truth boxes (fields ``labels``, ``attributes``) are the boxes;
    - "sgcls": the same plus ``predict_logits``;
    - "sgdet": proposals get the labels of the ground truth they overlap (IoU >=
      FG_IOU_THRESHOLD, else 0) when targets are given, ``predict_logits``, and are then
      post-processed into detections with ``boxes_per_cls`` and ``pred_labels`` / ``pred_scores``.
    """

    def __init__(self, feature_extractor: nn.Module, predictor: nn.Module, post_processor: PostProcessor,
                 loss_evaluator: FastRCNNLossComputation, samp_processor: FastRCNNSampling,
                 relation_mode: Optional[str] = None) -> None:
        super().__init__()
        if relation_mode is not None and relation_mode not in RELATION_MODES:
            raise ValueError(f"relation_mode must be None or one of {RELATION_MODES}, got {relation_mode!r}")
        self.feature_extractor = feature_extractor
        self.predictor = predictor
        self.post_processor = post_processor
        self.loss_evaluator = loss_evaluator
        self.samp_processor = samp_processor
        self.relation_mode = relation_mode

    @property
    def uses_gt_boxes(self) -> bool:
        """True in PredCls/SGCls, where the ground-truth boxes replace the RPN proposals."""
        return self.relation_mode in ("predcls", "sgcls")

    def forward(self, features: Sequence[torch.Tensor], proposals: Optional[Sequence[BoxList]],
                targets: Optional[Sequence[BoxList]] = None
                ) -> Tuple[torch.Tensor, List[BoxList], Dict[str, torch.Tensor]]:
        """Box features, the boxes they belong to (sampled proposals in training, detections
        at test, GT boxes in PredCls/SGCls) and the losses."""
        if self.relation_mode is not None:
            return self._forward_relation(features, proposals, targets)
        if self.training:
            if targets is None:
                raise ValueError("Box head training needs targets")
            with torch.no_grad():
                proposals = self.samp_processor.subsample(proposals, targets)
        x = self.feature_extractor(features, proposals)
        class_logits, box_regression = self.predictor(x)
        if not self.training:
            x, result = self.post_processor(x, class_logits, box_regression, proposals)
            return x, result, {}
        loss_classifier, loss_box_reg = self.loss_evaluator(class_logits, box_regression, proposals)
        return x, list(proposals), {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

    def _forward_relation(self, features: Sequence[torch.Tensor], proposals: Optional[Sequence[BoxList]],
                          targets: Optional[Sequence[BoxList]]
                          ) -> Tuple[torch.Tensor, List[BoxList], Dict[str, torch.Tensor]]:
        if self.uses_gt_boxes:
            if targets is None:
                raise ValueError(f"{self.relation_mode} uses the ground-truth boxes: targets are required")
            proposals = [t.copy_with_fields([f for f in ("labels", "attributes") if t.has_field(f)])
                         for t in targets]
            x = self.feature_extractor(features, proposals)
            if self.relation_mode == "sgcls":
                class_logits, _ = self.predictor(x)
                proposals = add_predict_logits(proposals, class_logits)
            return x, proposals, {}
        if targets is not None:
            proposals = self.samp_processor.assign_label_to_proposals(proposals, targets)
        x = self.feature_extractor(features, proposals)
        class_logits, box_regression = self.predictor(x)
        proposals = add_predict_logits(proposals, class_logits)
        x, result = self.post_processor(x, class_logits, box_regression, proposals, relation_mode=True)
        return x, result, {}


def build_roi_box_head(cfg, in_channels: int) -> ROIBoxHead:
    """Box head from cfg.MODEL.ROI_BOX_HEAD / ROI_HEADS, in the relation mode the config selects."""
    feature_extractor = make_roi_box_feature_extractor(cfg, in_channels)
    return ROIBoxHead(
        feature_extractor=feature_extractor,
        predictor=make_roi_box_predictor(cfg, feature_extractor.out_channels),
        post_processor=make_roi_box_post_processor(cfg),
        loss_evaluator=make_roi_box_loss_evaluator(cfg),
        samp_processor=make_roi_box_samp_processor(cfg),
        relation_mode=detector_mode_from_config(cfg),
    )
