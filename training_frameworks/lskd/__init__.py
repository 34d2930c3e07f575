"""LS-KD: soft relation targets fused from the one-hot label and a self-predicted label
semantic distribution (Li et al., TCSVT 2024; the reconstruction of ``shared/docs/LSKD.md``).

Importing the package registers the "LSKD" training framework and adds the ``LSKD.*``
config group to the project's default config. ``LSKD.STRATEGY`` chooses "iterative"
(frozen snapshot teacher) or "synchronous" (auxiliary logit head).
"""
from maskrcnn_benchmark.config import cfg as _default_cfg

from .config import LSKDSettings, add_lskd_config
from .framework import LSKDFramework

add_lskd_config(_default_cfg)

__all__ = ["LSKDFramework", "LSKDSettings", "add_lskd_config"]
