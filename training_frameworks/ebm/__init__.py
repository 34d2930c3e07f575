"""EBM (Suhail et al., CVPR 2021; EBM.md): an energy model scores (image graph, scene graph) and the
relation head trains so that the GT graph has low energy and its own SGLD-refined prediction high
energy. Training only. Settings: ``EBM.*`` (the release's values by default).
"""
from maskrcnn_benchmark.config import cfg as _default_cfg

from .config import EBMSettings, SamplerSettings, add_ebm_config
from .energy_model import EnergyModel
from .framework import EBM
from .graph import GraphBatch, minmax_rows
from .layers import EdgeGNN, ImageGraphGNN
from .loss import energy_losses
from .sampler import SGLDSampler

add_ebm_config(_default_cfg)

__all__ = ["EBM", "EBMSettings", "EdgeGNN", "EnergyModel", "GraphBatch", "ImageGraphGNN", "SGLDSampler",
           "SamplerSettings", "add_ebm_config", "energy_losses", "minmax_rows"]
