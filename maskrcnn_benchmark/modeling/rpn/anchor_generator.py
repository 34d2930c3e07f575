"""Anchors: Detectron's cell anchors per level, tiled over each feature map."""
from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import torch
from torch import nn

from maskrcnn_benchmark.structures import BoxList, ImageList
from maskrcnn_benchmark.structures.box_convention import pixel_offset


class BufferList(nn.Module):
    """A list of buffers saved as ``<name>.0``, ``<name>.1``, ... in the state_dict."""

    def __init__(self, buffers: Sequence[torch.Tensor] = ()) -> None:
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._buffers.values())


def generate_anchors(stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """Cell anchors ``[len(aspect_ratios) * len(sizes), 4]`` (ratio-major) by Detectron's rule.

    Start from the window (0, 0, stride - 1, stride - 1); for each aspect ratio r = h / w
    choose a width round(sqrt(area / r)) and height round(width * r) (numpy/torch round
    half to even) around the same centre; then scale each by size / stride. Widths use
    the "+1" convention (a box (x1, x2) is x2 - x1 + 1 wide). Computed in float64 and
    returned as float32, as the benchmark does.
    """
    off = pixel_offset(True)
    dtype = torch.float64
    base = float(stride)
    ctr = 0.5 * (base - off)
    ratios = torch.tensor(aspect_ratios, dtype=dtype, device="cpu")
    scales = torch.tensor(sizes, dtype=dtype, device="cpu") / base
    ws = torch.round(torch.sqrt(base * base / ratios))
    hs = torch.round(ws * ratios)
    ws = (ws[:, None] * scales[None, :]).reshape(-1)
    hs = (hs[:, None] * scales[None, :]).reshape(-1)
    anchors = torch.stack((ctr - 0.5 * (ws - off), ctr - 0.5 * (hs - off),
                           ctr + 0.5 * (ws - off), ctr + 0.5 * (hs - off)), dim=1)
    return anchors.float()


class AnchorGenerator(nn.Module):
    """Anchors for every location of every feature map, as one BoxList per image and level.

    With one stride, all sizes share that feature map; with several (FPN), level i uses
    ``sizes[i]`` at ``strides[i]``. Cell anchors are buffers ``cell_anchors.{i}`` (saved in
    checkpoints). Each BoxList carries a ``visibility`` field: anchors inside the image
    by ``straddle_thresh`` pixels (all visible when it is negative).
    """

    def __init__(self, sizes: Sequence[float] = (128, 256, 512), aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 anchor_strides: Sequence[int] = (8, 16, 32), straddle_thresh: float = 0) -> None:
        super().__init__()
        if len(anchor_strides) == 1:
            cell_anchors = [generate_anchors(anchor_strides[0], sizes, aspect_ratios)]
        else:
            if len(anchor_strides) != len(sizes):
                raise ValueError(f"FPN needs one anchor size per stride, got sizes {tuple(sizes)} "
                                 f"and strides {tuple(anchor_strides)}")
            cell_anchors = [generate_anchors(stride, (size,), aspect_ratios)
                            for stride, size in zip(anchor_strides, sizes)]
        self.strides = tuple(anchor_strides)
        self.cell_anchors = BufferList(cell_anchors)
        self.straddle_thresh = straddle_thresh

    def num_anchors_per_location(self) -> List[int]:
        return [len(cell) for cell in self.cell_anchors]

    def grid_anchors(self, grid_sizes: Sequence[Tuple[int, int]]) -> List[torch.Tensor]:
        """Per level ``[H * W * A, 4]`` anchors, ordered by row, column, then cell anchor."""
        anchors = []
        for (grid_height, grid_width), stride, base_anchors in zip(grid_sizes, self.strides, self.cell_anchors):
            device = base_anchors.device
            shifts_x = torch.arange(0, grid_width * stride, step=stride, dtype=torch.float32, device=device)
            shifts_y = torch.arange(0, grid_height * stride, step=stride, dtype=torch.float32, device=device)
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def add_visibility_to(self, boxlist: BoxList) -> None:
        image_width, image_height = boxlist.size
        anchors = boxlist.bbox
        if self.straddle_thresh >= 0:
            t = self.straddle_thresh
            inside = ((anchors[:, 0] >= -t) & (anchors[:, 1] >= -t)
                      & (anchors[:, 2] < image_width + t) & (anchors[:, 3] < image_height + t))
        else:
            inside = torch.ones(anchors.shape[0], dtype=torch.bool, device=anchors.device)
        boxlist.add_field("visibility", inside)

    def forward(self, image_list: ImageList, feature_maps: Sequence[torch.Tensor]) -> List[List[BoxList]]:
        """``anchors[image][level]``: a BoxList of that image's size with a ``visibility`` field."""
        grid_sizes = [tuple(feature_map.shape[-2:]) for feature_map in feature_maps]
        anchors_over_all_feature_maps = self.grid_anchors(grid_sizes)
        anchors = []
        for image_height, image_width in image_list.image_sizes:
            anchors_in_image = []
            for anchors_per_feature_map in anchors_over_all_feature_maps:
                boxlist = BoxList(anchors_per_feature_map, (image_width, image_height), mode="xyxy")
                self.add_visibility_to(boxlist)
                anchors_in_image.append(boxlist)
            anchors.append(anchors_in_image)
        return anchors


def make_anchor_generator(cfg) -> AnchorGenerator:
    rpn = cfg.MODEL.RPN
    if rpn.USE_FPN and len(rpn.ANCHOR_STRIDE) != len(rpn.ANCHOR_SIZES):
        raise ValueError("MODEL.RPN.USE_FPN needs len(ANCHOR_STRIDE) == len(ANCHOR_SIZES)")
    if not rpn.USE_FPN and len(rpn.ANCHOR_STRIDE) != 1:
        raise ValueError("Without MODEL.RPN.USE_FPN, MODEL.RPN.ANCHOR_STRIDE must have one entry")
    return AnchorGenerator(rpn.ANCHOR_SIZES, rpn.ASPECT_RATIOS, rpn.ANCHOR_STRIDE, rpn.STRADDLE_THRESH)
