"""Helpers shared by the relation contexts: box encodings, object orderings, inits."""
from __future__ import annotations

import itertools
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.box_convention import pixel_offset

ORDERINGS = ("leftright", "confidence", "size")


def _check_xyxy(proposals: Sequence[BoxList]) -> None:
    if any(p.mode != "xyxy" for p in proposals):
        raise ValueError("relation predictors expect proposals in xyxy mode")


def encode_box_info(proposals: Sequence[BoxList]) -> torch.Tensor:
    """``[sum N, 9]`` box geometry relative to the (resized) image size ``(W, H)``:
    w/W, h/H, cx/W, cy/H, x1/W, y1/H, x2/W, y2/H, w*h/(W*H), with the "+1" widths."""
    _check_xyxy(proposals)
    off = pixel_offset(legacy=True)
    infos = []
    for proposal in proposals:
        width, height = proposal.size
        if width * height == 0:
            raise ValueError(f"image size {proposal.size} has no area")
        boxes = proposal.bbox
        wh = boxes[:, 2:] - boxes[:, :2] + off
        centre = boxes[:, :2] + 0.5 * wh
        scale = boxes.new_tensor([width, height])
        infos.append(torch.cat([wh / scale, centre / scale, boxes[:, :2] / scale, boxes[:, 2:] / scale,
                                (wh[:, :1] * wh[:, 1:]) / (width * height)], dim=1))
    return torch.cat(infos, dim=0)


def ordering_scores(proposals: Sequence[BoxList], ordering: str = "leftright",
                    obj_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[sum N]`` key that orders the objects fed to a sequence context (highest first).

    ``leftright``: box centre x over (batch max + 1), the benchmark's only choice;
    ``confidence``: best non-background probability of ``obj_logits``;
    ``size``: box area.
    """
    _check_xyxy(proposals)
    boxes = torch.cat([p.bbox for p in proposals], dim=0)
    if ordering == "leftright":
        centre_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
        return centre_x / (centre_x.max() + 1) if centre_x.numel() else centre_x
    if ordering == "confidence":
        if obj_logits is None:
            raise ValueError("the confidence ordering needs object logits")
        return F.softmax(obj_logits.detach(), dim=1)[:, 1:].max(dim=1)[0]
    if ordering == "size":
        off = pixel_offset(legacy=True)
        return (boxes[:, 2] - boxes[:, 0] + off) * (boxes[:, 3] - boxes[:, 1] + off)
    raise ValueError(f"ordering should be one of {ORDERINGS}, got {ordering!r}")


def sort_within_images(scores: torch.Tensor, num_objs: Sequence[int]) -> List[torch.Tensor]:
    """Per image, the global indices of its objects by descending score (ties keep box order)."""
    orders, offset = [], 0
    for score in scores.split(list(num_objs), dim=0):
        orders.append(torch.sort(score, descending=True, stable=True)[1] + offset)
        offset += score.shape[0]
    return orders


def to_onehot(labels: torch.Tensor, num_classes: int, fill: float = 1000.0) -> torch.Tensor:
    """``[N, C]`` logits equal to ``fill`` at each label and ``-fill`` elsewhere (PredCls "logits")."""
    onehot = torch.full((labels.shape[0], num_classes), -fill, device=labels.device)
    onehot[torch.arange(labels.shape[0], device=labels.device), labels.long()] = fill
    return onehot


def dropout_mask(p: float, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """A fixed (per sequence) inverted-dropout mask: 0 with probability ``p``, else ``1 / (1 - p)``."""
    return (torch.rand(tuple(shape), device=device) > p).float() / (1.0 - p)


def xavier_init(layer: nn.Linear) -> nn.Linear:
    """Xavier-normal weight and zero bias (the benchmark's ``layer_init(xavier=True)``)."""
    nn.init.xavier_normal_(layer.weight, gain=1.0)
    nn.init.zeros_(layer.bias)
    return layer


def normal_init(layer: nn.Linear, std: float) -> nn.Linear:
    """N(0, std) weight and zero bias (the benchmark's ``layer_init(normal=True)``)."""
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    nn.init.zeros_(layer.bias)
    return layer


@torch.no_grad()
def block_orthogonal_(tensor: torch.Tensor, split_sizes: Sequence[int], gain: float = 1.0) -> None:
    """Fill a 2-D tensor block by block, each ``split_sizes`` block a random matrix with orthonormal
    rows or columns (the benchmark's ``block_orthogonal``).

    The benchmark cuts each block out of a square orthogonal matrix of the larger side; drawing
    the rectangular block directly has the same (Haar) distribution without a 5000 x 5000 QR.
    """
    if any(size % split for size, split in zip(tensor.shape, split_sizes)):
        raise ValueError(f"tensor shape {tuple(tensor.shape)} is not divisible by the blocks {split_sizes}")
    rows, cols = split_sizes
    starts = [range(0, size, split) for size, split in zip(tensor.shape, split_sizes)]
    for row, col in itertools.product(*starts):
        block = tensor.new_empty(rows, cols)
        nn.init.orthogonal_(block, gain=gain)
        tensor[row:row + rows, col:col + cols] = block
