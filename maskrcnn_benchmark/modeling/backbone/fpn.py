"""Feature Pyramid Network on top of the ResNet stages (P2..P5, plus P6 by max-pooling)."""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class LastLevelMaxPool(nn.Module):
    """P6 = max_pool2d(P5, kernel 1, stride 2)."""

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [F.max_pool2d(x, 1, 2, 0)]


class FPN(nn.Module):
    """Lateral 1x1 convs ``fpn_inner{i}`` and output 3x3 convs ``fpn_layer{i}``, top-down
    with nearest 2x upsampling, coarsest level last.

    The upsampled map is sized to the lateral map, which equals 2x upsampling whenever the
    input is padded to a multiple of the coarsest stride (DATALOADER.SIZE_DIVISIBILITY 32)
    and keeps odd sizes working otherwise.
    """

    def __init__(self, in_channels_list: Sequence[int], out_channels: int, conv_block: Callable[..., nn.Module],
                 top_blocks: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.inner_blocks: List[str] = []
        self.layer_blocks: List[str] = []
        for idx, in_channels in enumerate(in_channels_list, 1):
            inner, layer = f"fpn_inner{idx}", f"fpn_layer{idx}"
            self.add_module(inner, conv_block(in_channels, out_channels, 1))
            self.add_module(layer, conv_block(out_channels, out_channels, 3, 1))
            self.inner_blocks.append(inner)
            self.layer_blocks.append(layer)
        self.top_blocks = top_blocks

    def forward(self, x: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        last_inner = getattr(self, self.inner_blocks[-1])(x[-1])
        results = [getattr(self, self.layer_blocks[-1])(last_inner)]
        for feature, inner, layer in zip(x[:-1][::-1], self.inner_blocks[:-1][::-1], self.layer_blocks[:-1][::-1]):
            lateral = getattr(self, inner)(feature)
            top_down = F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            last_inner = lateral + top_down
            results.insert(0, getattr(self, layer)(last_inner))
        if self.top_blocks is not None:
            results.extend(self.top_blocks(results[-1]))
        return tuple(results)
