"""BatchNorm with fixed statistics and affine terms, as the benchmark's backbones use it."""
import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """``y = x * w / sqrt(var) + (b - mean * w / sqrt(var))`` per channel, with NO epsilon.

    ``weight``, ``bias``, ``running_mean`` and ``running_var`` are buffers (never trained),
    under the key names of ``nn.BatchNorm2d``, so benchmark checkpoints load unchanged.
    torchvision's class of the same name adds eps = 1e-5; the benchmark's did not.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * self.running_var.rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}"
