"""Hierarchical Memory Learning (ECCV 2022) for the scene graph benchmark.

Everything HML-specific lives in this package and reaches `maskrcnn_benchmark`
only through registries, config keys and named hooks. Importing it adds the
``HML`` config group to the project's default config and registers the
``HMLPredictor`` wrapper; ``hml_patch.stages.train_hml`` runs the stages.
"""
from maskrcnn_benchmark.config import cfg as _default_cfg

from .config import add_hml_config
from .predictor import HMLPredictor

add_hml_config(_default_cfg)

__all__ = ["HMLPredictor", "add_hml_config"]
