"""The ``HIER`` config group and the settings read from it (only here is the config read)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from maskrcnn_benchmark.config.config_node import CfgNode as CN

FORMS = ("marginal", "factorised")
TUNE_METRICS = ("HR@50", "F@50", "Mean@50")


def add_hier_config(cfg: CN) -> None:
    """Add the ``HIER`` group (no-op when present)."""
    if "HIER" in cfg:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.HIER = CN()
    cfg.HIER.TREE = ""  # predicate tree file (fine -> coarse "parents"), e.g. configs/hierarchy/vg150_cogtree_tree.json
    cfg.HIER.FORM = "marginal"  # "marginal" (flat logits, no new parameters) or "factorised" (a new head)
    cfg.HIER.LAYER_WEIGHTS = ()  # (w1, w2); empty = HGR-Net's 1/N_j rule, N_1 = |C| + 1, N_2 = |F|
    cfg.HIER.CLASS_BALANCED = False  # effective-number weights inside each layer (CogTree's beta)
    cfg.HIER.CB_GAMMA = 0.999
    cfg.HIER.REFINE_THRESHOLD = 0.5  # D3 tau: refine to the best child when max P2 >= tau (0 always, 1 never)
    cfg.HIER.TUNE_METRIC = "Mean@50"  # tools/tune_refine_threshold.py: HR@50, F@50 or Mean@50 on DATASETS.VAL
    cfg.HIER.TUNE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    if was_frozen:
        cfg.freeze()


@dataclass(frozen=True)
class HierSettings:
    """What the framework needs from ``HIER.*``; ``layer_weights`` None means the HGR-Net rule."""

    tree: str
    form: str = "marginal"
    layer_weights: Optional[Tuple[float, float]] = None
    class_balanced: bool = False
    cb_gamma: float = 0.999
    refine_threshold: float = 0.5

    @classmethod
    def from_config(cls, cfg) -> "HierSettings":
        hier = cfg.HIER
        if not hier.TREE:
            raise ValueError("HierarchicalLoss needs HIER.TREE, a predicate tree file with fine -> coarse parents")
        if hier.FORM not in FORMS:
            raise ValueError(f"HIER.FORM should be one of {FORMS}, got {hier.FORM!r}")
        weights = tuple(float(w) for w in hier.LAYER_WEIGHTS)
        if weights and (len(weights) != 2 or min(weights) < 0):
            raise ValueError(f"HIER.LAYER_WEIGHTS should be empty or two non-negative numbers, got {weights}")
        if not 0.0 <= hier.REFINE_THRESHOLD <= 1.0:
            raise ValueError(f"HIER.REFINE_THRESHOLD should be in [0, 1], got {hier.REFINE_THRESHOLD}")
        if cfg.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS:
            raise ValueError("HierarchicalLoss replaces the relation loss; LABEL_SMOOTHING_LOSS has no meaning with it")
        return cls(tree=hier.TREE, form=hier.FORM, layer_weights=weights or None,
                   class_balanced=bool(hier.CLASS_BALANCED), cb_gamma=float(hier.CB_GAMMA),
                   refine_threshold=float(hier.REFINE_THRESHOLD))
