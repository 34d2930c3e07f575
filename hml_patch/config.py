"""The HML config group (``HML.*``) and its reading into one settings object.

``add_hml_config(cfg)`` adds the group to a config (importing ``hml_patch`` adds it
to the project's default config, so YAML files and ``KEY VALUE`` overrides with HML
keys load). The switch itself is the benchmark key ``MODEL.ROI_RELATION_HEAD.HML``.

Defaults follow HML.md. Choices the paper leaves open:
- ``CB_GAMMA = 0.999``: Cui et al.'s class-balanced weights saturate at
  1 / (1 - gamma) = 1000 effective samples, so on VG150 (predicates with 10^1 to
  10^5 relations) rare classes weigh up to ~100x the head ones instead of the
  ~10^4x of inverse frequency, and on small stage subsets (counts below a few
  hundred) the weights are close to inverse frequency.
- ``BG_WEIGHT = 1.0``: the background ("no relation") class weighs as much as an
  average class of the stage, which is what plain cross-entropy does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from maskrcnn_benchmark.config.config_node import CfgNode as CN

MODES = ("paper", "official")
# The authors' MR parameter set: predictor parameters whose name (relative to the
# predictor) starts with one of these (context encoders, post layers, classifiers).
DEFAULT_PARAM_FILTER = ("context_layer", "post", "rel", "ctx")


def add_hml_config(cfg: CN) -> None:
    """Add the ``HML`` group (no-op when present)."""
    if "HML" in cfg:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.HML = CN()
    # "paper" (the paper's equations) or "official" (the authors' released code, HML.md section 7).
    cfg.HML.MODE = "paper"
    # Predicate tree: a tree JSON file (tools/build_predicate_tree.py), or a source built at start:
    # "cluster" (word vectors of HML.TREE_VECTORS), "list:<names per layer>", "frequency:K".
    # "" = the authors' 10-predicate list in official mode (required in paper mode).
    cfg.HML.TREE = ""
    cfg.HML.TREE_VECTORS = ""  # word vectors for TREE "cluster"; "" = GLOVE_DIR
    cfg.HML.TREE_THRESHOLD = 0.7  # T_SS of the clustering
    cfg.HML.TREE_ORDER = "index"  # clustering order: "index" or "frequency"
    cfg.HML.NUM_STAGES = 0  # stages to train; 0 = one per tree layer
    # Iterations of each stage; empty = SOLVER.MAX_ITER for every stage. SOLVER.STEPS are
    # scaled by STAGE_MAX_ITER[k] / SOLVER.MAX_ITER.
    cfg.HML.STAGE_MAX_ITER = []
    cfg.HML.SEED = 0  # stage k's fresh model is initialised after seeding with SEED + k
    cfg.HML.INIT_FROM_PREVIOUS = False  # initialise stage k from stage k-1 (the paper does not)
    # Compute the teacher's logits once per image and stage (MOTIFS, VCTree, Transformer, Causal; IMP
    # always runs the teacher per step): same results, a fraction of the teacher's cost.
    cfg.HML.TEACHER_CACHE = True
    # Paper loss: CB-CE + CR_WEIGHT * alpha * CR + MR_WEIGHT * beta * MR (Eq. 3-4).
    cfg.HML.LAMBDA = 0.5  # beta = LAMBDA (N_new + N_old) / N_new
    cfg.HML.CR_WEIGHT = 1.0  # extra factor on the CR term (both modes)
    cfg.HML.MR_WEIGHT = 1.0  # extra factor on the MR term (both modes)
    cfg.HML.CB_GAMMA = 0.999  # class-balanced CE of Cui et al. over the stage's predicates
    cfg.HML.BG_WEIGHT = 1.0  # background weight, relative to an average stage class
    cfg.HML.CR_DISTANCE = "l2"  # "l2" (Eq. 5) or "l1"
    cfg.HML.CR_TEMPERATURE = 1.0
    cfg.HML.MR_DISTANCE = "l2"  # "l2" (Eq. 12) or "abs"
    cfg.HML.FISHER = ""  # "mean" (Eq. 8), "ema"; "" = the mode's ("mean" paper, "ema" official)
    cfg.HML.EPS = 1e-8  # denominator term of the path integral (Eq. 9)
    cfg.HML.PARAM_FILTER = list(DEFAULT_PARAM_FILTER)  # prefixes of the MR parameters' names in the predictor
    # Add MR's gradient from the importance pass's buffers after the backward instead of through
    # autograd: the same training up to float rounding, without the penalty's forward/backward pass.
    # Off by default: it saves 0.1 s per step at full MOTIFS dims, short of the 1.03x goal (README).
    cfg.HML.FUSED_MR_GRAD = False
    # The authors' settings used in official mode (their key names).
    cfg.HML.OFFICIAL = CN()
    cfg.HML.OFFICIAL.LAMBDA_FOR_PARAM = 1.0
    cfg.HML.OFFICIAL.DISTILL_TYPE = "abs"  # "abs" (their default) or "l2" (their README command)
    cfg.HML.OFFICIAL.ALPHA_FOR_FISHER = 0.5
    if was_frozen:
        cfg.freeze()


@dataclass(frozen=True)
class HMLSettings:
    """The HML group read once, with the mode's choices resolved."""

    mode: str
    tree: str
    tree_vectors: str
    tree_threshold: float
    tree_order: str
    num_stages: int
    stage_max_iter: Tuple[int, ...]
    seed: int
    init_from_previous: bool
    teacher_cache: bool
    lam: float
    cr_weight: float
    mr_weight: float
    cb_gamma: float
    bg_weight: float
    cr_distance: str
    cr_temperature: float
    mr_distance: str
    fisher: str
    eps: float
    param_filter: Tuple[str, ...]
    official_lambda: float
    official_distill_type: str
    official_fisher_alpha: float
    fused_mr_grad: bool

    @classmethod
    def from_config(cls, cfg) -> "HMLSettings":
        """Read and check ``cfg.HML`` (raises ValueError naming the key)."""
        hml = cfg.HML
        if hml.MODE not in MODES:
            raise ValueError(f"HML.MODE must be one of {MODES}, got {hml.MODE!r}")
        checks = {"HML.CR_DISTANCE": (hml.CR_DISTANCE, ("l2", "l1")),
                  "HML.MR_DISTANCE": (hml.MR_DISTANCE, ("l2", "abs")),
                  "HML.FISHER": (hml.FISHER, ("", "mean", "ema")),
                  "HML.TREE_ORDER": (hml.TREE_ORDER, ("index", "frequency")),
                  "HML.OFFICIAL.DISTILL_TYPE": (hml.OFFICIAL.DISTILL_TYPE, ("abs", "l2"))}
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
        if hml.MODE == "paper" and not hml.TREE:
            raise ValueError("HML.TREE is empty: point it at a tree file (tools/build_predicate_tree.py) or give a "
                             "source: 'cluster', 'list:on,has;*' or 'frequency:K'")
        if any(int(n) <= 0 for n in hml.STAGE_MAX_ITER):
            raise ValueError(f"HML.STAGE_MAX_ITER entries must be positive, got {list(hml.STAGE_MAX_ITER)}")
        if not 0.0 <= hml.CB_GAMMA < 1.0:
            raise ValueError(f"HML.CB_GAMMA must be in [0, 1), got {hml.CB_GAMMA}")
        return cls(
            mode=hml.MODE, tree=hml.TREE, tree_vectors=hml.TREE_VECTORS or cfg.GLOVE_DIR,
            tree_threshold=float(hml.TREE_THRESHOLD), tree_order=hml.TREE_ORDER, num_stages=int(hml.NUM_STAGES),
            stage_max_iter=tuple(int(n) for n in hml.STAGE_MAX_ITER), seed=int(hml.SEED),
            init_from_previous=bool(hml.INIT_FROM_PREVIOUS), teacher_cache=bool(hml.TEACHER_CACHE), lam=float(hml.LAMBDA),
            cr_weight=float(hml.CR_WEIGHT), mr_weight=float(hml.MR_WEIGHT), cb_gamma=float(hml.CB_GAMMA),
            bg_weight=float(hml.BG_WEIGHT), cr_distance=hml.CR_DISTANCE, cr_temperature=float(hml.CR_TEMPERATURE),
            mr_distance=hml.MR_DISTANCE,
            fisher=hml.FISHER or ("mean" if hml.MODE == "paper" else "ema"), eps=float(hml.EPS),
            param_filter=tuple(hml.PARAM_FILTER), official_lambda=float(hml.OFFICIAL.LAMBDA_FOR_PARAM),
            official_distill_type=hml.OFFICIAL.DISTILL_TYPE,
            official_fisher_alpha=float(hml.OFFICIAL.ALPHA_FOR_FISHER), fused_mr_grad=bool(hml.FUSED_MR_GRAD))

    def stage_iterations(self, stage: int, default: int) -> int:
        """Iterations of ``stage`` (1-based)."""
        if not self.stage_max_iter:
            return default
        if stage > len(self.stage_max_iter):
            raise ValueError(f"HML.STAGE_MAX_ITER has {len(self.stage_max_iter)} entries; stage {stage} has none")
        return self.stage_max_iter[stage - 1]

    def importance_kwargs(self) -> dict:
        """Arguments of ``ImportanceState`` for this mode."""
        return {"mode": self.mode, "eps": self.eps, "fisher": self.fisher,
                "fisher_alpha": self.official_fisher_alpha}


def resolve_num_stages(settings: HMLSettings, num_layers: int) -> int:
    """Stages to train for a tree of ``num_layers`` layers."""
    stages = settings.num_stages or num_layers
    if not 1 <= stages <= num_layers:
        raise ValueError(f"HML.NUM_STAGES is {settings.num_stages} but the tree has {num_layers} layers")
    return stages
