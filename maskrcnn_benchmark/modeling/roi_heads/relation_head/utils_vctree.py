"""VCTree structure: per-image trees built from pairwise scores, their binary form, overlap features.

A tree is grown greedily (maximum spanning tree by insertion): the root is the box with the
highest mean score, then the best (already-in-tree parent, new child) pair is added until every
box is in. The multi-way tree becomes a binary tree (left child = first child, right child =
next sibling). TreeLSTMs walk the binary trees level by level, so the forest also keeps the nodes
grouped by height (leaves first) and by depth (roots first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.box_convention import pixel_offset

OVERLAP_IMAGE_SCALE = 1024.0


def grow_tree(pair_score: np.ndarray) -> Tuple[int, List[List[int]]]:
    """Root and ordered children lists of the tree grown from an ``[N, N]`` score matrix.

    ``pair_score[p, c]`` scores box ``c`` as a child of box ``p``. Ties go to the earliest
    (parent in insertion order, child in box order) pair.
    """
    num = pair_score.shape[0]
    root = int(np.argmax(pair_score.mean(axis=1)))
    children: List[List[int]] = [[] for _ in range(num)]
    selected = [root]
    remaining = [i for i in range(num) if i != root]
    while remaining:
        block = pair_score[np.ix_(selected, remaining)]
        best = int(np.argmax(block))
        parent, child = selected[best // len(remaining)], remaining[best % len(remaining)]
        children[parent].append(child)
        selected.append(child)
        remaining.remove(child)
    return root, children


def to_binary(root: int, children: Sequence[Sequence[int]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(left, right, parent)`` arrays (-1 = none) of the left-child / right-sibling binary tree."""
    num = len(children)
    left, right, parent = (np.full(num, -1, dtype=np.int64) for _ in range(3))
    for node in range(num):
        previous = node
        for k, child in enumerate(children[node]):
            if k == 0:
                left[node] = child
            else:
                right[previous] = child
            parent[child] = previous
            previous = child
    return left, right, parent


def _levels(root: int, left: np.ndarray, right: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Depth (root 0) and height (leaves 0) of every node of one binary tree."""
    depth = np.zeros(left.shape[0], dtype=np.int64)
    height = np.zeros(left.shape[0], dtype=np.int64)
    order = [root]
    for node in order:
        for child in (left[node], right[node]):
            if child >= 0:
                depth[child] = depth[node] + 1
                order.append(int(child))
    for node in reversed(order):
        kids = [height[c] + 1 for c in (left[node], right[node]) if c >= 0]
        height[node] = max(kids, default=0)
    return depth, height


def _group(values: np.ndarray, device: torch.device) -> List[torch.Tensor]:
    return [torch.from_numpy(np.nonzero(values == v)[0]).to(device) for v in range(int(values.max()) + 1)]


@dataclass
class BinaryForest:
    """Binary trees of all images of a batch over global box indices (-1 = no node)."""
    left: torch.Tensor
    right: torch.Tensor
    parent: torch.Tensor
    image: torch.Tensor
    up_levels: List[torch.Tensor]
    down_levels: List[torch.Tensor]
    num_images: int

    @property
    def num_nodes(self) -> int:
        return self.left.shape[0]


def build_forest(pair_scores: Sequence[torch.Tensor], device: torch.device) -> BinaryForest:
    """One binary tree per image from its ``[N_i, N_i]`` scores, indexed globally over the batch."""
    lefts, rights, parents, images, depths, heights = [], [], [], [], [], []
    offset = 0
    for image, score in enumerate(pair_scores):
        num = score.shape[0]
        if num == 0:
            continue
        root, children = grow_tree(score.detach().float().cpu().numpy())
        left, right, parent = to_binary(root, children)
        depth, height = _levels(root, left, right)
        for arr, out in ((left, lefts), (right, rights), (parent, parents)):
            out.append(np.where(arr >= 0, arr + offset, -1))
        images.append(np.full(num, image, dtype=np.int64))
        depths.append(depth)
        heights.append(height)
        offset += num
    if not lefts:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return BinaryForest(empty, empty, empty, empty, [], [], len(pair_scores))

    def joined(parts: List[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts)).to(device)

    return BinaryForest(joined(lefts), joined(rights), joined(parents), joined(images),
                        up_levels=_group(np.concatenate(heights), device),
                        down_levels=_group(np.concatenate(depths), device),
                        num_images=len(pair_scores))


def get_overlap_info(proposals: Sequence[BoxList]) -> torch.Tensor:
    """``[sum N, 6]`` overlap statistics of each box with the boxes of its image (self included):
    number of intersecting boxes, summed intersection area / 1024^2, summed IoU, the two sums
    per intersecting box, and the box area / 1024^2 (areas of intersections use "+1" widths,
    the box area does not)."""
    off = pixel_offset(legacy=True)
    infos = []
    for proposal in proposals:
        boxes = proposal.bbox.float()
        wh = (torch.min(boxes[:, None, 2:], boxes[None, :, 2:]) -
              torch.max(boxes[:, None, :2], boxes[None, :, :2]) + off).clamp(min=0)
        intersection = wh[..., 0] * wh[..., 1]
        areas = (boxes[:, 2] - boxes[:, 0] + off) * (boxes[:, 3] - boxes[:, 1] + off)
        iou = intersection / (areas[:, None] + areas[None, :] - intersection + 1e-9)
        count = (intersection > 0).float().sum(1)
        inter_sum = intersection.sum(1) / OVERLAP_IMAGE_SCALE ** 2
        iou_sum = iou.sum(1)
        plain_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        infos.append(torch.stack([count, inter_sum, iou_sum, inter_sum / (count + 1e-9),
                                  iou_sum / (count + 1e-9), plain_area / OVERLAP_IMAGE_SCALE ** 2], dim=1))
    return torch.cat(infos, dim=0)
