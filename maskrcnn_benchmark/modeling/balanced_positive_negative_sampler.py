"""Sample a fixed-size batch of positives and negatives per image."""
from typing import List, Sequence, Tuple

import torch


class BalancedPositiveNegativeSampler:
    """Per image, at most ``batch_size_per_image`` samples of which at most
    ``positive_fraction`` are positive; negatives fill the rest when available.

    Labels: ``>= 1`` positive, ``0`` negative, ``-1`` ignored.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, labels: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Boolean masks (one per image, shaped like its labels) of sampled positives and negatives."""
        pos_masks, neg_masks = [], []
        for labels_per_image in labels:
            positive = torch.nonzero(labels_per_image >= 1).squeeze(1)
            negative = torch.nonzero(labels_per_image == 0).squeeze(1)
            num_pos = min(positive.numel(), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            pos_idx = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
            neg_idx = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
            pos_mask = torch.zeros_like(labels_per_image, dtype=torch.bool)
            neg_mask = torch.zeros_like(labels_per_image, dtype=torch.bool)
            pos_mask[pos_idx] = True
            neg_mask[neg_idx] = True
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks
