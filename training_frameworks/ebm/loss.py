"""The release's contrastive-divergence loss with its L2 term (EBM.md 4.1)."""
from __future__ import annotations

from typing import Dict

import torch


def energy_losses(pos: torch.Tensor, neg: torch.Tensor, temp: float = 1.0, cd_weight: float = 1.0,
                  l2_weight: float = 1.0) -> Dict[str, torch.Tensor]:
    """``loss_ebm_cd`` = cd_weight * temp * (mean E+ - mean E-) and ``loss_ebm_l2`` = l2_weight * sum_b (E+^2 + E-^2).

    ``pos`` and ``neg`` are the ``[B, 1]`` energies of the GT and the sampled graphs of this process's
    B images: means in the contrastive part, a sum in the L2 part, as in the release (whose weights
    are both 1). With free energies and a = cd_weight * temp the minimum is -a^2 / (2 B l2_weight), at
    E+ = -a / (2 B l2_weight) and E- = +a / (2 B l2_weight) (-0.125 at -/+0.125 for the defaults, B = 4).
    """
    cd = cd_weight * temp * (pos.mean() - neg.mean())
    l2 = l2_weight * (pos.pow(2).sum() + neg.pow(2).sum())
    return {"loss_ebm_cd": cd, "loss_ebm_l2": l2}
