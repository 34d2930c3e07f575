"""The ``EBM`` config group and the settings read from it (only here is the config read).

Defaults are the authors' release (``mods333/energy-based-scene-graph@d522c2b``, EBM.md): the
sampler takes the values of its README training command (LR 1.0, 20 steps), the loss weights
and the architecture constants are the release's hard-coded values. Each quirk fix is a switch
that is off by default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from maskrcnn_benchmark.config.config_node import CfgNode as CN

SAMPLER_RULES = ("release", "paper")
STATE_NORMS = ("minmax", "softmax")
POSITIVE_PAIRS = ("gt", "sampled")


def add_ebm_config(cfg: CN) -> None:
    """Add the ``EBM`` group (no-op when present)."""
    if "EBM" in cfg:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.EBM = CN()
    # Energy model (release: MODEL.ROI_RELATION_HEAD.EBM.*_EMBED_DIM / POOLING_DIM 512).
    cfg.EBM.NODE_DIM = 512  # node state width of both graphs (release OBJ_EMBED_DIM)
    cfg.EBM.EDGE_DIM = 512  # scene-graph edge state width (release REL_EMBED_DIM)
    cfg.EBM.POOLING_DIM = 512  # pooled width per graph; the energy MLP is 2 x POOLING_DIM -> POOLING_DIM -> 1
    cfg.EBM.BOX_EMBED_DIM = 128  # release hard-coded: box code 9 -> 32 -> 128
    cfg.EBM.GNN_ITERS = 3  # release hard-coded: shared-weight message-passing steps of both graphs
    cfg.EBM.ALPHA = 0.5  # release hard-coded: node update input alpha * node msg + (1 - alpha) * edge msg
    cfg.EBM.BN_MOMENTUM = 0.001  # release hard-coded: BatchNorm of the box embedding
    # Loss: CD_WEIGHT * TEMP * (mean E+ - mean E-) + L2_WEIGHT * sum_b (E+^2 + E-^2).
    cfg.EBM.TEMP = 1.0  # release ENERGY_MODEL.TEMP
    cfg.EBM.CD_WEIGHT = 1.0  # release: hard-coded 1 (the paper's lambda_e)
    cfg.EBM.L2_WEIGHT = 1.0  # release: hard-coded 1 (its ENERGY_MODEL.L2COEFF is never read); honoured here
    cfg.EBM.DATA_NOISE = 1e-4  # release ENERGY_MODEL.DATA_NOISE_VAR, used as a std
    # SGLD sampler (release SAMPLER.*; LR and ITERS are its README command's, the code defaults are 0.1 / 10).
    cfg.EBM.SAMPLER = CN()
    cfg.EBM.SAMPLER.RULE = "release"  # "release" (noise, clipped step, renormalise) or "paper" (x - lr/2 grad + noise)
    cfg.EBM.SAMPLER.LR = 1.0
    cfg.EBM.SAMPLER.NOISE = 0.001  # release SAMPLER.VAR, used as a std
    cfg.EBM.SAMPLER.ITERS = 20
    cfg.EBM.SAMPLER.GRAD_CLIP = 0.01  # per-element clamp of the state gradient (release rule only)
    # Fixes of the release's quirks (EBM.md section 8); False / "minmax" / "gt" reproduce the release.
    cfg.EBM.BN_EVAL_DURING_SAMPLING = False  # quirk 8: BatchNorm in eval while sampling
    cfg.EBM.STATE_NORM = "minmax"  # quirk 11: "softmax" for probabilities instead of min-max rows
    cfg.EBM.POSITIVE_PAIRS = "gt"  # quirk 10: "sampled" scores the GT labels on the prediction's pairs
    cfg.EBM.DETACH_IMAGE_FEATURES = False  # quirk 2: True stops the energy gradient into the box features
    cfg.EBM.ENERGY_LOG = "ebm_energies.json"  # under OUTPUT_DIR: mean E+ / E- per logged iteration ("" = none)
    if was_frozen:
        cfg.freeze()


@dataclass(frozen=True)
class SamplerSettings:
    rule: str = "release"
    lr: float = 1.0
    noise: float = 0.001
    iters: int = 20
    grad_clip: float = 0.01
    norm: str = "minmax"
    bn_eval: bool = False


@dataclass(frozen=True)
class EBMSettings:
    """What the framework needs from ``EBM.*``, the relation head's mode and the solver."""

    node_dim: int
    edge_dim: int
    pooling_dim: int
    box_embed_dim: int
    gnn_iters: int
    alpha: float
    bn_momentum: float
    temp: float
    cd_weight: float
    l2_weight: float
    data_noise: float
    sampler: SamplerSettings
    positive_pairs: str
    detach_image_features: bool
    num_obj_classes: int
    num_rel_classes: int
    use_gt_box: bool
    use_gt_labels: bool
    grad_norm_clip: float
    energy_log: str

    @classmethod
    def from_config(cls, cfg) -> "EBMSettings":
        ebm = cfg.EBM
        if ebm.SAMPLER.RULE not in SAMPLER_RULES:
            raise ValueError(f"EBM.SAMPLER.RULE should be one of {SAMPLER_RULES}, got {ebm.SAMPLER.RULE!r}")
        if ebm.STATE_NORM not in STATE_NORMS:
            raise ValueError(f"EBM.STATE_NORM should be one of {STATE_NORMS}, got {ebm.STATE_NORM!r}")
        if ebm.POSITIVE_PAIRS not in POSITIVE_PAIRS:
            raise ValueError(f"EBM.POSITIVE_PAIRS should be one of {POSITIVE_PAIRS}, got {ebm.POSITIVE_PAIRS!r}")
        if ebm.SAMPLER.ITERS < 0 or ebm.SAMPLER.NOISE < 0 or ebm.DATA_NOISE < 0:
            raise ValueError("EBM.SAMPLER.ITERS, EBM.SAMPLER.NOISE and EBM.DATA_NOISE should be >= 0")
        head = cfg.MODEL.ROI_RELATION_HEAD
        sampler = SamplerSettings(rule=ebm.SAMPLER.RULE, lr=float(ebm.SAMPLER.LR), noise=float(ebm.SAMPLER.NOISE),
                                  iters=int(ebm.SAMPLER.ITERS), grad_clip=float(ebm.SAMPLER.GRAD_CLIP),
                                  norm=ebm.STATE_NORM, bn_eval=bool(ebm.BN_EVAL_DURING_SAMPLING))
        energy_log = ""
        if ebm.ENERGY_LOG and cfg.OUTPUT_DIR:
            energy_log = os.path.join(cfg.OUTPUT_DIR, ebm.ENERGY_LOG)
        return cls(node_dim=int(ebm.NODE_DIM), edge_dim=int(ebm.EDGE_DIM), pooling_dim=int(ebm.POOLING_DIM),
                   box_embed_dim=int(ebm.BOX_EMBED_DIM), gnn_iters=int(ebm.GNN_ITERS), alpha=float(ebm.ALPHA),
                   bn_momentum=float(ebm.BN_MOMENTUM), temp=float(ebm.TEMP), cd_weight=float(ebm.CD_WEIGHT),
                   l2_weight=float(ebm.L2_WEIGHT), data_noise=float(ebm.DATA_NOISE), sampler=sampler,
                   positive_pairs=ebm.POSITIVE_PAIRS, detach_image_features=bool(ebm.DETACH_IMAGE_FEATURES),
                   num_obj_classes=int(cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES), num_rel_classes=int(head.NUM_CLASSES),
                   use_gt_box=bool(head.USE_GT_BOX), use_gt_labels=bool(head.USE_GT_OBJECT_LABEL),
                   grad_norm_clip=float(cfg.SOLVER.GRAD_NORM_CLIP or 0.0), energy_log=energy_log)
