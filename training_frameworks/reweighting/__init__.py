"""Re-weighting baselines: the relation CE with per-predicate weights from the training counts.

"ClassBalancedCE": Cui et al. (CVPR 2019), weight (1 - gamma) / (1 - gamma ** n_c);
"InverseFrequencyCE": weight 1 / n_c. Both over all predicates, rescaled to mean 1,
background at ``REWEIGHT.BG_WEIGHT`` on that scale. Settings: ``REWEIGHT.*``.
"""
from maskrcnn_benchmark.config import cfg as _default_cfg

from .framework import ClassBalancedCE, InverseFrequencyCE, add_reweight_config, training_counts

add_reweight_config(_default_cfg)

__all__ = ["ClassBalancedCE", "InverseFrequencyCE", "add_reweight_config", "training_counts"]
