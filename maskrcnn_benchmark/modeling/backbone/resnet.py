"""ResNet / ResNeXt bodies with frozen BatchNorm, in the benchmark's module layout.

Stage specs are picked by MODEL.BACKBONE.CONV_BODY (the benchmark's names: the
ResNeXt-101 32x8d detector is "R-101-FPN" with RESNETS.NUM_GROUPS 32 and
WIDTH_PER_GROUP 8). Module names (``stem.conv1``, ``layer{1..4}.{b}.conv{1..3}``,
``bn{1..3}``, ``downsample.{0,1}``) match benchmark checkpoints.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Dict, List, Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.layers import FrozenBatchNorm2d

StageSpec = namedtuple("StageSpec", ["index", "block_count", "return_features"])


def _stages(block_counts: Sequence[int]) -> tuple:
    """Specs of stages layer1..layer4 with the given block counts, all returned (for FPN)."""
    return tuple(StageSpec(index=i, block_count=n, return_features=True) for i, n in enumerate(block_counts, 1))


_STAGE_SPECS: Dict[str, tuple] = {
    "R-18-FPN": _stages((2, 2, 2, 2)),
    "R-50-FPN": _stages((3, 4, 6, 3)),
    "R-101-FPN": _stages((3, 4, 23, 3)),
    "R-152-FPN": _stages((3, 8, 36, 3)),
}


class StemWithFixedBatchNorm(nn.Module):
    """7x7 stride-2 conv (no bias), frozen BN, ReLU, 3x3 stride-2 max-pool."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, out_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(out_channels)
        nn.init.kaiming_uniform_(self.conv1.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.bn1(self.conv1(x)))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    return nn.Sequential(conv, FrozenBatchNorm2d(out_channels))


class BottleneckWithFixedBatchNorm(nn.Module):
    """1x1 -> 3x3 (grouped, ``num_groups``) -> 1x1 bottleneck with frozen BN and a residual.

    The stride sits on the first 1x1 conv when ``stride_in_1x1`` (MSRA ResNet) and on
    the 3x3 conv otherwise (ResNeXt). A ``downsample`` projection exists when the
    channel count changes; it is created first, so its keys come first in the state_dict.
    """

    def __init__(self, in_channels: int, bottleneck_channels: int, out_channels: int, num_groups: int,
                 stride_in_1x1: bool, stride: int) -> None:
        super().__init__()
        self.downsample = _downsample(in_channels, out_channels, stride) if in_channels != out_channels else None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False)
        self.bn1 = FrozenBatchNorm2d(bottleneck_channels)
        self.conv2 = nn.Conv2d(bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
                               padding=1, bias=False, groups=num_groups)
        self.bn2 = FrozenBatchNorm2d(bottleneck_channels)
        self.conv3 = nn.Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels)
        for conv in (self.conv1, self.conv3):
            nn.init.kaiming_uniform_(conv.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = F.relu_(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu_(out + identity)


class BasicBlockWithFixedBatchNorm(nn.Module):
    """Two 3x3 convs with frozen BN and a residual (ResNet-18/34 block; not in the benchmark).

    ``bottleneck_channels`` and ``stride_in_1x1`` are accepted for a common block signature
    and unused. ``conv2`` starts at zero so that each block starts as the identity: with
    frozen (identity) BN and no ImageNet weights, this keeps activations bounded when the
    body is trained from scratch.
    """

    def __init__(self, in_channels: int, bottleneck_channels: int, out_channels: int, num_groups: int,
                 stride_in_1x1: bool, stride: int) -> None:
        super().__init__()
        if num_groups != 1:
            raise ValueError(f"BasicBlockWithFixedBatchNorm has no grouped conv; got NUM_GROUPS {num_groups}")
        needs_projection = in_channels != out_channels or stride != 1
        self.downsample = _downsample(in_channels, out_channels, stride) if needs_projection else None
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = FrozenBatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(out_channels)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu_(out + identity)


_TRANSFORMATION_MODULES: Dict[str, Type[nn.Module]] = {
    "BottleneckWithFixedBatchNorm": BottleneckWithFixedBatchNorm,
    "BasicBlockWithFixedBatchNorm": BasicBlockWithFixedBatchNorm,
}
_STEM_MODULES: Dict[str, Type[nn.Module]] = {"StemWithFixedBatchNorm": StemWithFixedBatchNorm}


def _lookup(table: Dict[str, object], name: str, key: str) -> object:
    if name not in table:
        raise KeyError(f"{key} {name!r} is not supported; choose one of {sorted(table)}")
    return table[name]


class ResNet(nn.Module):
    """Stem plus stages ``layer1..layer4``; returns the outputs of the stages marked in the specs.

    Stage ``i`` (1-based) has ``res2_out_channels * 2^(i-1)`` output channels and
    ``num_groups * width_per_group * 2^(i-1)`` bottleneck channels; its first block has
    stride 2 except in layer1. ``freeze_at`` = k stops gradients to the stem (k >= 1)
    and to layer1..layer(k-1), as MODEL.BACKBONE.FREEZE_CONV_BODY_AT does.
    """

    def __init__(self, stage_specs: Sequence[StageSpec], block: Type[nn.Module], num_groups: int = 1,
                 width_per_group: int = 64, stride_in_1x1: bool = True, stem_out_channels: int = 64,
                 res2_out_channels: int = 256, freeze_at: int = 2) -> None:
        super().__init__()
        self.stem = StemWithFixedBatchNorm(stem_out_channels)
        self.stages: List[str] = []
        self.return_features: Dict[str, bool] = {}
        in_channels = stem_out_channels
        for spec in stage_specs:
            factor = 2 ** (spec.index - 1)
            out_channels = res2_out_channels * factor
            bottleneck_channels = num_groups * width_per_group * factor
            stride = 2 if spec.index > 1 else 1
            blocks = []
            for _ in range(spec.block_count):
                blocks.append(block(in_channels, bottleneck_channels, out_channels, num_groups, stride_in_1x1, stride))
                in_channels, stride = out_channels, 1
            name = f"layer{spec.index}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stages.append(name)
            self.return_features[name] = spec.return_features
        self._freeze_backbone(freeze_at)

    @classmethod
    def from_config(cls, cfg) -> "ResNet":
        r = cfg.MODEL.RESNETS
        if any(r.STAGE_WITH_DCN):
            raise ValueError("MODEL.RESNETS.STAGE_WITH_DCN (deformable convs) is not supported")
        _lookup(_STEM_MODULES, r.STEM_FUNC, "MODEL.RESNETS.STEM_FUNC")
        return cls(stage_specs=_lookup(_STAGE_SPECS, cfg.MODEL.BACKBONE.CONV_BODY, "MODEL.BACKBONE.CONV_BODY"),
                   block=_lookup(_TRANSFORMATION_MODULES, r.TRANS_FUNC, "MODEL.RESNETS.TRANS_FUNC"),
                   num_groups=r.NUM_GROUPS, width_per_group=r.WIDTH_PER_GROUP, stride_in_1x1=r.STRIDE_IN_1X1,
                   stem_out_channels=r.STEM_OUT_CHANNELS, res2_out_channels=r.RES2_OUT_CHANNELS,
                   freeze_at=cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT)

    def _freeze_backbone(self, freeze_at: int) -> None:
        for stage_index in range(max(freeze_at, 0)):
            module = self.stem if stage_index == 0 else getattr(self, f"layer{stage_index}")
            for p in module.parameters():
                p.requires_grad = False

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outputs = []
        x = self.stem(x)
        for name in self.stages:
            x = getattr(self, name)(x)
            if self.return_features[name]:
                outputs.append(x)
        return outputs
