"""Side-by-side training steps of one relation model with different training frameworks attached (the
shared part of benchmarks/ebm_overhead.py and benchmarks/framework_overhead.py).

A ``Dims`` is a config, an image size and a batch; ``Bench`` builds from it the base config
(``hml_overhead.build_config``: PredCls, CPU, random frozen detector; its ``HML True`` only gives
the HML variant its keys, every other variant's config sets it back to False), random dataset
statistics and one synthetic batch. ``Bench.variant`` builds a model with the same initial weights
for each ``Spec`` and attaches the framework the way relation training does: a config naming it in
``MODEL.ROI_RELATION_HEAD.FRAMEWORKS`` (plus the spec's own keys, OUTPUT_DIR empty so nothing is
written), ``build_frameworks`` and ``attach_frameworks`` before the optimizer is made, and the
framework's ``train_hooks()`` around every step (each timed under ``hook:<class>``). The step is
``hml_overhead.Variant.step`` (the per-iteration work of ``do_train``); ``alternate`` runs the
variants in turn (A B C A B C ...), warm-up steps excluded, and ``compare`` gives the median ratios.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
from argparse import Namespace
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import training_frameworks  # noqa: F401  (registers the frameworks, adds their config groups)
from hml_overhead import (DEFAULT_CONFIG, PHASES, PhaseTimer, TimedHook, Variant, build_config, build_model,
                          random_statistics, setup_stage2, synthetic_batch)
from maskrcnn_benchmark.engine.framework import TrainingFramework, attach_frameworks, build_frameworks
from maskrcnn_benchmark.modeling.roi_heads.relation_head.word_vectors import glove_file_stem

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_CONFIG = DEFAULT_CONFIG  # X-101-32x8d-FPN MOTIFS, the benchmark's full dims
SMALL_CONFIG = os.path.join(REPO, "configs", "synthetic_vg", "relation_R_18_FPN_predcls.yaml")
# HierarchicalLoss trees whose predicate names are those of each config's dataset.
FULL_TREE = os.path.join(REPO, "configs", "hierarchy", "vg150_cogtree_tree.json")
SMALL_TREE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")


@dataclass(frozen=True)
class Dims:
    """Model dims (a config) and the batch fed to every variant."""

    name: str
    config: str
    min_size: int  # short image side; the long side is 4/3 of it
    batch: int
    hier_tree: str = ""  # a tree for HierarchicalLoss (its names become the statistics' predicate names)


def full_dims(min_size: int = 320, batch: int = 1, config: str = FULL_CONFIG) -> Dims:
    return Dims("full", config, min_size, batch, FULL_TREE if config == FULL_CONFIG else SMALL_TREE)


def small_dims(min_size: int = 192, batch: int = 4, config: str = SMALL_CONFIG) -> Dims:
    """The synthetic yaml's training size (192 x 256) and IMS_PER_BATCH (4)."""
    return Dims("small", config, min_size, batch, SMALL_TREE)


@dataclass(frozen=True)
class Spec:
    """One variant: ``framework`` ("" for the plain step) with config ``overrides``; ``prime_steps``
    untimed steps run before the common warm-up (e.g. LS-KD's first snapshot); ``hml_stage2``: HML
    stage 2 as ``hml_overhead.setup_stage2`` sets it up (a multi-stage framework has no single attach)."""

    key: str
    framework: str = ""
    overrides: Tuple[Any, ...] = ()
    prime_steps: int = 0
    hml_stage2: bool = False


@dataclass
class Built:
    """A variant ready to step, with the frameworks attached to its model."""

    spec: Spec
    variant: Variant
    frameworks: List[TrainingFramework] = field(default_factory=list)


def tree_names(path: str) -> List[str]:
    with open(path) as f:
        return list(json.load(f)["predicates"])


class Bench:
    """Base config, statistics and batch of one ``Dims``; builds the variants (call inside ``glove``)."""

    def __init__(self, dims: Dims, predictor: str = "MotifPredictor", opts: Sequence[Any] = (),
                 boxes: int = 12, rels: int = 6, seed: int = 0, hml_tree: str = "frequency:10",
                 stage1_steps: int = 2) -> None:
        self.dims, self.seed, self.stage1_steps = dims, seed, stage1_steps
        self.boxes, self.rels = boxes, rels
        self.args = Namespace(config=dims.config, predictor=predictor, hml_mode="paper", tree=hml_tree,
                              no_teacher_cache=False, opts=list(opts))
        self.timer = PhaseTimer()
        self.cfg = None
        self.statistics: Dict[str, Any] = {}
        self.images = self.targets = None
        self.image_size: Tuple[int, int] = (0, 0)

    @contextmanager
    def glove(self) -> Iterator[None]:
        """The config, statistics and batch, with the one-word GloVe file (EMBED_DIM values: they do not
        change the cost) that the models read while they are built inside the block."""
        with tempfile.TemporaryDirectory() as directory:
            self.cfg = build_config(self.args, directory)
            head = self.cfg.MODEL.ROI_RELATION_HEAD
            with open(os.path.join(directory, glove_file_stem(head.EMBED_DIM) + ".txt"), "w") as f:
                f.write("start " + " ".join(["0.1"] * head.EMBED_DIM) + "\n")
            self.statistics = random_statistics(self.cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, head.NUM_CLASSES, self.seed)
            if self.dims.hier_tree and len(tree_names(self.dims.hier_tree)) == head.NUM_CLASSES:
                self.statistics["rel_classes"] = tree_names(self.dims.hier_tree)
            self.images, self.targets, self.image_size = synthetic_batch(
                self.cfg, self.dims.batch, self.dims.min_size, self.boxes, self.rels, self.seed)
            yield

    def variant_config(self, spec: Spec):
        cfg = self.cfg.clone()
        cfg.defrost()
        frameworks = [spec.framework] if spec.framework and not spec.hml_stage2 else []
        cfg.merge_from_list(["MODEL.ROI_RELATION_HEAD.HML", spec.hml_stage2,
                             "MODEL.ROI_RELATION_HEAD.FRAMEWORKS", frameworks, "OUTPUT_DIR", "",
                             *spec.overrides])
        cfg.freeze()
        return cfg

    def variant(self, spec: Spec, before_attach: Optional[Callable[[List[TrainingFramework]], None]] = None
                ) -> Built:
        """``spec``'s model (same initial weights for every spec), its frameworks built and attached,
        its optimizer, its hooks timed; then its prime steps."""
        cfg = self.variant_config(spec)
        model = build_model(cfg, self.statistics, self.seed)
        if spec.hml_stage2:
            variant = Variant(cfg, model, self.dims.batch, self.timer)
            setup_stage2(cfg, variant, self.statistics, self.images, self.targets, self.stage1_steps, self.timer)
            built = Built(spec, variant)
        else:
            frameworks = build_frameworks(cfg, self.statistics)
            if before_attach is not None:
                before_attach(frameworks)
            attach_frameworks(model, frameworks)  # before the optimizer: added modules train too
            variant = Variant(cfg, model, self.dims.batch, self.timer)
            variant.hooks = [TimedHook(hook, self.timer, f"hook:{type(hook).__name__}", f"hook:{type(hook).__name__}")
                             for framework in frameworks for hook in framework.train_hooks()]
            built = Built(spec, variant, frameworks)
        for _ in range(spec.prime_steps):
            variant.step(self.images, self.targets, record=False)
        return built

    def alternate(self, built: Sequence[Built], warmup: int, steps: int) -> None:
        """Each variant in turn, ``warmup + steps`` rounds; only the last ``steps`` are recorded."""
        for step in range(warmup + steps):
            for b in built:
                b.variant.step(self.images, self.targets, record=step >= warmup)

    def describe(self) -> Dict[str, Any]:
        head = self.cfg.MODEL.ROI_RELATION_HEAD
        return {"config": os.path.relpath(self.dims.config, REPO), "predictor": head.PREDICTOR,
                "image_size": list(self.image_size), "batch": self.dims.batch, "boxes": self.boxes,
                "rels": self.rels, "num_obj_classes": self.cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES,
                "num_rel_classes": head.NUM_CLASSES, "context_hidden_dim": head.CONTEXT_HIDDEN_DIM,
                "feature_dim": self.cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM}


def median(times: Sequence[Dict[str, float]], key: str) -> float:
    return statistics.median(t.get(key, 0.0) for t in times)


def compare(baseline: Sequence[Dict[str, float]], other: Sequence[Dict[str, float]], name: str) -> Dict[str, float]:
    """From two variants' recorded steps (``Variant.times``, the same rounds): the median step seconds
    (``baseline_s``, ``<name>_s``), their ratio, the median of the per-round ratios (``paired_ratio``)
    and the ratio of the median process CPU times (``cpu_ratio``)."""
    base_s, other_s = median(baseline, "total"), median(other, "total")
    paired = statistics.median(o["total"] / b["total"] for b, o in zip(baseline, other))
    return {"baseline_s": round(base_s, 4), f"{name}_s": round(other_s, 4), "ratio": round(other_s / base_s, 4),
            "paired_ratio": round(paired, 4), "cpu_ratio": round(median(other, "cpu") / median(baseline, "cpu"), 4)}


def phase_medians(times: Sequence[Dict[str, float]]) -> Dict[str, float]:
    return {phase: round(median(times, phase), 4) for phase in PHASES}


def trainable_params(variant: Variant) -> int:
    return sum(p.numel() for p in variant.trainable)
