"""Backbone builders registered under MODEL.BACKBONE.CONV_BODY names: ``body`` (ResNet) + ``fpn``."""
from collections import OrderedDict

from torch import nn

from maskrcnn_benchmark.modeling import registry
from maskrcnn_benchmark.modeling.make_layers import conv_with_kaiming_uniform

from . import fpn as fpn_module
from . import resnet


@registry.BACKBONES.register("R-18-FPN")
@registry.BACKBONES.register("R-50-FPN")
@registry.BACKBONES.register("R-101-FPN")
@registry.BACKBONES.register("R-152-FPN")
def build_resnet_fpn_backbone(cfg) -> nn.Sequential:
    """ResNet body with an FPN giving BACKBONE_OUT_CHANNELS at strides 4, 8, 16, 32 and 64."""
    if cfg.MODEL.FPN.USE_GN:
        raise ValueError("MODEL.FPN.USE_GN (GroupNorm in the FPN) is not supported")
    body = resnet.ResNet.from_config(cfg)
    stage2 = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS
    out_channels = cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS
    fpn = fpn_module.FPN(
        in_channels_list=[stage2, stage2 * 2, stage2 * 4, stage2 * 8],
        out_channels=out_channels,
        conv_block=conv_with_kaiming_uniform(cfg.MODEL.FPN.USE_RELU),
        top_blocks=fpn_module.LastLevelMaxPool(),
    )
    model = nn.Sequential(OrderedDict([("body", body), ("fpn", fpn)]))
    model.out_channels = out_channels
    return model


def build_backbone(cfg) -> nn.Module:
    """The backbone registered under MODEL.BACKBONE.CONV_BODY; has an ``out_channels`` attribute."""
    return registry.BACKBONES[cfg.MODEL.BACKBONE.CONV_BODY](cfg)
