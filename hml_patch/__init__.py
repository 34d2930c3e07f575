"""Hierarchical Memory Learning (ECCV 2022) for the scene graph benchmark.

Everything HML-specific lives in this package and reaches `maskrcnn_benchmark`
only through the training-framework interface (``maskrcnn_benchmark.engine.framework``)
and config keys. Importing it adds the ``HML`` config group to the project's default
config and registers the "HML" training framework (``HMLFramework``), whose stage
runner is ``hml_patch.stages.run_stages``.
"""
from maskrcnn_benchmark.config import cfg as _default_cfg

from .config import add_hml_config
from .framework import HMLFramework

add_hml_config(_default_cfg)

__all__ = ["HMLFramework", "add_hml_config"]
