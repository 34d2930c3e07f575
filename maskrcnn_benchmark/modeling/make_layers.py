"""Layer constructors with the benchmark's initialisations."""
from typing import Callable

from torch import nn


def make_fc(dim_in: int, hidden_dim: int) -> nn.Linear:
    """Linear layer with Caffe2's XavierFill (= kaiming_uniform, a=1) and zero bias."""
    fc = nn.Linear(dim_in, hidden_dim)
    nn.init.kaiming_uniform_(fc.weight, a=1)
    nn.init.constant_(fc.bias, 0)
    return fc


def make_conv3x3(in_channels: int, out_channels: int, dilation: int = 1, stride: int = 1,
                 use_relu: bool = False) -> nn.Module:
    """3x3 conv (kaiming_normal fan_out init, zero bias), followed by a ReLU if asked.

    With ``use_relu`` the result is ``nn.Sequential(conv, ReLU)``, so the conv's keys are
    ``<name>.0.weight`` / ``<name>.0.bias`` as in the benchmark.
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation,
                     dilation=dilation, bias=True)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.constant_(conv.bias, 0)
    if use_relu:
        return nn.Sequential(conv, nn.ReLU(inplace=True))
    return conv


def conv_with_kaiming_uniform(use_relu: bool = False) -> Callable[..., nn.Module]:
    """Factory of same-padded convs (kaiming_uniform a=1, zero bias), optionally followed by ReLU."""
    def make_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                  dilation: int = 1) -> nn.Module:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                         padding=dilation * (kernel_size - 1) // 2, dilation=dilation, bias=True)
        nn.init.kaiming_uniform_(conv.weight, a=1)
        nn.init.constant_(conv.bias, 0)
        if use_relu:
            return nn.Sequential(conv, nn.ReLU(inplace=True))
        return conv
    return make_conv
