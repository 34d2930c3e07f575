"""Fast R-CNN losses over the sampled RoIs."""
from typing import Sequence, Tuple

import torch
from torch.nn import functional as F

from maskrcnn_benchmark.layers import smooth_l1_loss
from maskrcnn_benchmark.modeling.utils import cat
from maskrcnn_benchmark.structures import BoxList


class FastRCNNLossComputation:
    """Cross-entropy over classes (mean over sampled RoIs) and smooth-L1 (beta 1) on the
    deltas of each positive RoI's own class, summed and divided by the number of sampled
    RoIs. Needs the ``labels`` and ``regression_targets`` fields set by
    ``FastRCNNSampling.subsample``.
    """

    def __init__(self, cls_agnostic_bbox_reg: bool = False) -> None:
        self.cls_agnostic_bbox_reg = cls_agnostic_bbox_reg

    def __call__(self, class_logits: torch.Tensor, box_regression: torch.Tensor,
                 proposals: Sequence[BoxList]) -> Tuple[torch.Tensor, torch.Tensor]:
        device = class_logits.device
        labels = cat([p.get_field("labels") for p in proposals], dim=0)
        regression_targets = cat([p.get_field("regression_targets") for p in proposals], dim=0)
        classification_loss = F.cross_entropy(class_logits, labels.long())

        pos = torch.nonzero(labels > 0).squeeze(1)
        if self.cls_agnostic_bbox_reg:
            map_inds = torch.tensor([4, 5, 6, 7], device=device).expand(pos.numel(), 4)
        else:
            map_inds = 4 * labels[pos][:, None] + torch.tensor([0, 1, 2, 3], device=device)
        box_loss = smooth_l1_loss(box_regression[pos[:, None], map_inds], regression_targets[pos],
                                  size_average=False, beta=1)
        return classification_loss, box_loss / labels.numel()


def make_roi_box_loss_evaluator(cfg) -> FastRCNNLossComputation:
    return FastRCNNLossComputation(cfg.MODEL.CLS_AGNOSTIC_BBOX_REG)
