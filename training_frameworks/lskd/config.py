"""The LS-KD config group (``LSKD.*``) and its reading into one settings object.

Every formula and default is the reconstruction of ``../shared/docs/LSKD.md`` (only the
paper's abstract is public); each open choice of that document is a key here.
"""
from __future__ import annotations

from dataclasses import dataclass

from maskrcnn_benchmark.config.config_node import CfgNode as CN

STRATEGIES = ("iterative", "synchronous")
LSD_SUPPORTS = ("all", "fg_only")
APPLY_TO = ("all", "pos", "neg")
KD_FORMS = ("soft_ce", "hinton")
MULTI_GT = ("random_pick", "uniform_multi_hot")
ALPHA_SCHEDULES = ("constant", "linear")


def add_lskd_config(cfg: CN) -> None:
    """Add the ``LSKD`` group (no-op when present)."""
    if "LSKD" in cfg:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.LSKD = CN()
    # "iterative": LSD from a frozen snapshot of the relation head, refreshed every REFRESH_PERIOD
    # iterations, plain CE before the first snapshot; "synchronous": LSD from an auxiliary copy of the
    # predictor's final logit layer(s) trained jointly with CE (loss_lskd_aux).
    cfg.LSKD.STRATEGY = "iterative"
    cfg.LSKD.ALPHA = 0.5  # weight of the LSD in s = (1 - alpha) onehot + alpha LSD; 0 = plain CE
    cfg.LSKD.ALPHA_SCHEDULE = "constant"  # "constant" or "linear" (alpha * t / SOLVER.MAX_ITER, PS-KD style)
    cfg.LSKD.TAU = 1.0  # LSD temperature: LSD = softmax(teacher logits / TAU)
    cfg.LSKD.LSD_SUPPORT = "all"  # "all" (51-way) or "fg_only" (background entry 0, renormalised over 1..50)
    cfg.LSKD.APPLY_TO = "all"  # which sampled pairs get soft targets: "all", "pos" (fg) or "neg" (bg)
    # "soft_ce": -sum_c s_c log p_c; "hinton": (1 - alpha) CE + alpha TAU^2 KL(LSD || softmax(z / TAU)).
    cfg.LSKD.KD_FORM = "soft_ce"
    # Pairs with several GT predicates: "random_pick" (the benchmark's one random predicate per load)
    # or "uniform_multi_hot" (onehot spread evenly over all the pair's GT predicates; needs
    # DATASETS.KEEP_ALL_PREDICATES True and GT boxes).
    cfg.LSKD.MULTI_GT = "random_pick"
    cfg.LSKD.REFRESH_PERIOD = 0  # iterative: snapshot every N iterations; 0 = one epoch of the train set
    cfg.LSKD.WARMUP_ITERS = 2000  # synchronous: plain CE (alpha 0) for the first W iterations
    cfg.LSKD.AUX_LOSS_WEIGHT = 1.0  # synchronous: factor on loss_lskd_aux
    cfg.LSKD.AUX_DETACH_FEATURES = False  # synchronous: loss_lskd_aux does not reach the shared encoder
    if was_frozen:
        cfg.freeze()


def _choice(key: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"LSKD.{key} should be one of {list(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class LSKDSettings:
    """The ``LSKD.*`` keys, checked; see :func:`add_lskd_config` for their meaning."""

    strategy: str = "iterative"
    alpha: float = 0.5
    alpha_schedule: str = "constant"
    tau: float = 1.0
    lsd_support: str = "all"
    apply_to: str = "all"
    kd_form: str = "soft_ce"
    multi_gt: str = "random_pick"
    refresh_period: int = 0
    warmup_iters: int = 2000
    aux_loss_weight: float = 1.0
    aux_detach_features: bool = False

    def __post_init__(self) -> None:
        _choice("STRATEGY", self.strategy, STRATEGIES)
        _choice("ALPHA_SCHEDULE", self.alpha_schedule, ALPHA_SCHEDULES)
        _choice("LSD_SUPPORT", self.lsd_support, LSD_SUPPORTS)
        _choice("APPLY_TO", self.apply_to, APPLY_TO)
        _choice("KD_FORM", self.kd_form, KD_FORMS)
        _choice("MULTI_GT", self.multi_gt, MULTI_GT)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"LSKD.ALPHA should be in [0, 1], got {self.alpha}")
        if self.tau <= 0:
            raise ValueError(f"LSKD.TAU should be positive, got {self.tau}")
        if self.refresh_period < 0 or self.warmup_iters < 0:
            raise ValueError("LSKD.REFRESH_PERIOD and LSKD.WARMUP_ITERS should be >= 0")

    @classmethod
    def from_config(cls, cfg) -> "LSKDSettings":
        c = cfg.LSKD
        return cls(strategy=c.STRATEGY, alpha=float(c.ALPHA), alpha_schedule=c.ALPHA_SCHEDULE, tau=float(c.TAU),
                   lsd_support=c.LSD_SUPPORT, apply_to=c.APPLY_TO, kd_form=c.KD_FORM, multi_gt=c.MULTI_GT,
                   refresh_period=int(c.REFRESH_PERIOD), warmup_iters=int(c.WARMUP_ITERS),
                   aux_loss_weight=float(c.AUX_LOSS_WEIGHT), aux_detach_features=bool(c.AUX_DETACH_FEATURES))
