"""HML's stage runner (HML.md sections 3-7): one freshly initialised relation model per tree layer.

Stage k trains on the layer-pure images of layer k with the class-balanced
cross-entropy over layer k's predicates; from stage 2 on, the frozen stage k-1
model scores the student's pairs for Concept Reconstruction and its parameters and
importance anchor Model Reconstruction. Each stage writes into
``OUTPUT_DIR/stage{k}/``: its checkpoints (which also hold the importance buffers
and the pending Omega term, so a killed stage resumes exactly), ``importance_final.pth``
(the state handed to the next stage) and ``stage_report.json``. A stage with a
report is complete and is only reloaded when the command runs again. At the end
``OUTPUT_DIR/last_checkpoint`` names the last stage's final model, so
``tools/relation_test_net.py`` with the same OUTPUT_DIR evaluates it.
"""
from __future__ import annotations

import json
import logging
import os
import statistics as stats_lib
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from maskrcnn_benchmark.data.build import build_dataset, get_dataset_statistics
from maskrcnn_benchmark.engine.defaults import RunContext
from maskrcnn_benchmark.engine.framework import FrameworkRunner, build_frameworks
from maskrcnn_benchmark.engine.relation_train import build_relation_model
from maskrcnn_benchmark.engine.trainer import StepOutcome, TrainHook
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file
from maskrcnn_benchmark.utils.comm import is_main_process, synchronize
from maskrcnn_benchmark.utils.env import seed_all

from .config import HMLSettings, resolve_num_stages
from .importance import ImportanceState
from .layer_pure import LayerPureFilter, image_predicates, layer_pure_indices
from .losses import class_balanced_weights, concept_reconstruction_loss, official_concept_reconstruction_loss
from .losses import stage_loss_weights
from .official import official_class_weights, official_layer_lists
from .framework import HMLFramework, StageTerms, mr_parameters
from .teacher import PAIR_INDEPENDENT_PREDICTORS, RelationTeacher, TeacherLogitCache
from .tree import PredicateTree, build_tree, build_tree_from_lists
from .word_vectors import load_name_vectors

STAGE_REPORT = "stage_report.json"
IMPORTANCE_FINAL = "importance_final.pth"
IMPORTANCE_STATE_KEY = "hml_importance"
LOSS_WINDOW_KEY = "hml_loss_window"
FINAL_LOSS_WINDOW = 20


class ImportanceHook(TrainHook):
    """Feeds every optimizer step to the importance state, with the unclipped gradients; adds the
    fused MR gradient (HML.FUSED_MR_GRAD) after the backward, before clipping."""

    def __init__(self, state: ImportanceState) -> None:
        self.state = state

    def after_backward(self, iteration: int, model: torch.nn.Module) -> None:
        self.state.add_mr_gradient()

    def before_step(self, iteration: int, model: torch.nn.Module) -> None:
        self.state.before_step()

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        self.state.after_step(outcome.loss, outcome.applied, grad_scale=1.0 / outcome.clip_coef)


class LossWindow(TrainHook):
    """Median of each loss term over the last iterations (the stage report's final losses)."""

    def __init__(self, size: int = FINAL_LOSS_WINDOW) -> None:
        self.values: Dict[str, Deque[float]] = {}
        self.size = size

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        for name, value in {"loss": outcome.loss, **outcome.losses}.items():
            self.values.setdefault(name, deque(maxlen=self.size)).append(value)

    def medians(self) -> Dict[str, float]:
        return {name: float(stats_lib.median(values)) for name, values in self.values.items()}

    def state_dict(self) -> Dict[str, List[float]]:
        return {name: list(values) for name, values in self.values.items()}

    def load_state_dict(self, state: Dict[str, List[float]]) -> None:
        self.values = {name: deque(values, maxlen=self.size) for name, values in state.items()}


def train_predicate_counts(statistics: Dict[str, Any]) -> List[int]:
    """Training relations per predicate id (background 0) from the dataset statistics' fg_matrix."""
    counts = torch.as_tensor(statistics["fg_matrix"]).sum(dim=(0, 1))
    counts[0] = 0
    return [int(c) for c in counts]


def load_tree(settings: HMLSettings, names: Sequence[str], counts: Sequence[int]) -> PredicateTree:
    """The tree of HML.TREE (file or source); official mode without a TREE uses the authors' list."""
    if not settings.tree:
        return build_tree_from_lists(names, official_layer_lists(names), counts)
    if os.path.isfile(settings.tree):
        return PredicateTree.from_json(settings.tree, names)
    kind = settings.tree.partition(":")[0]
    if kind not in ("cluster", "list", "frequency"):
        raise FileNotFoundError(f"HML.TREE {settings.tree!r} is neither an existing tree file nor a source "
                                "('cluster', 'list:...', 'frequency:K')")
    vectors = load_name_vectors(settings.tree_vectors, names[1:]) if kind == "cluster" else None
    return build_tree(settings.tree, names, counts, vectors, threshold=settings.tree_threshold,
                      order=settings.tree_order, embedding=settings.tree_vectors if vectors is not None else None)


def stage_config(cfg, iterations: int):
    """``cfg`` with SOLVER.MAX_ITER = ``iterations`` and SOLVER.STEPS scaled to it."""
    stage_cfg = cfg.clone()
    stage_cfg.defrost()
    scale = iterations / cfg.SOLVER.MAX_ITER
    stage_cfg.SOLVER.MAX_ITER = iterations
    stage_cfg.SOLVER.STEPS = tuple(max(1, round(step * scale)) for step in cfg.SOLVER.STEPS)
    stage_cfg.freeze()
    return stage_cfg


def stage_predicate_counts(datasets: Sequence[Any], predicate_ids: Sequence[int], num_classes: int
                           ) -> Tuple[np.ndarray, int, int]:
    """Relations per predicate id over the layer-pure images of all training datasets, with the
    numbers of images kept and in all (the stage's loader applies the same filter and logs it)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    kept_images = total_images = 0
    for dataset in datasets:
        per_image = image_predicates(dataset)
        kept = layer_pure_indices(dataset, predicate_ids)
        if len(kept):
            counts += np.bincount(np.concatenate([per_image[i] for i in kept]), minlength=num_classes)
        kept_images += len(kept)
        total_images += len(dataset)
    return counts, kept_images, total_images


class StagePlan:
    """Everything stage ``stage`` needs that does not depend on the trained models."""

    def __init__(self, settings: HMLSettings, tree: PredicateTree, stage: int, datasets: Sequence[Any]) -> None:
        names = tree.names
        self.stage = stage
        self.new_classes = tree.stage_predicates(stage)
        self.old_classes = tree.old_predicates(stage)
        self.layer_filter = LayerPureFilter.for_stage(tree, stage)
        self.counts, self.images_kept, self.images_total = stage_predicate_counts(
            datasets, self.new_classes, len(names))
        if settings.mode == "paper":
            self.class_weights = class_balanced_weights(torch.as_tensor(self.counts), self.new_classes,
                                                        settings.cb_gamma, settings.bg_weight)
            alpha, beta = stage_loss_weights(len(self.old_classes), len(self.new_classes), settings.lam)
            self.cr_weight, self.mr_weight = alpha * settings.cr_weight, beta * settings.mr_weight
            self.mr_distance = settings.mr_distance
        else:
            self.class_weights = official_class_weights(names, stage)
            self.cr_weight = settings.cr_weight
            self.mr_weight = settings.official_lambda * settings.mr_weight
            self.mr_distance = settings.official_distill_type
        self.settings = settings

    def cr_loss(self):
        """The CR function of the mode: Eq. 5 over the old classes, or the authors' L1 over all columns."""
        if self.settings.mode == "official":
            return official_concept_reconstruction_loss
        old, temperature, distance = self.old_classes, self.settings.cr_temperature, self.settings.cr_distance
        return lambda student, teacher: concept_reconstruction_loss(student, teacher, old, temperature, distance)

    def report(self, tree: PredicateTree, train_counts: Sequence[int], iterations: int) -> Dict[str, Any]:
        names = tree.names
        return {
            "stage": self.stage,
            "mode": self.settings.mode,
            "iterations": iterations,
            "stage_predicates": [names[i] for i in self.new_classes],
            "old_predicates": [names[i] for i in self.old_classes],
            "images_kept": self.images_kept,
            "images_total": self.images_total,
            "stage_predicate_counts": {names[i]: int(self.counts[i]) for i in self.new_classes},
            "train_predicate_counts": {names[i]: int(train_counts[i]) for i in range(1, len(names))},
            "class_weights": {names[i]: w for i, w in enumerate(self.class_weights.tolist()) if w != 0 or i == 0},
            "cr_weight": self.cr_weight if self.stage > 1 else 0.0,
            "mr_weight": self.mr_weight if self.stage > 1 else 0.0,
            "mr_distance": self.mr_distance,
        }


@dataclass
class HMLResult:
    """What :func:`train_hml` leaves: the last stage's model, the importance state after it, the stage reports."""

    model: torch.nn.Module
    importance: ImportanceState
    reports: List[Dict[str, Any]]


def train_hml(cfg, ctx: RunContext, hooks: Sequence[TrainHook] = ()) -> HMLResult:
    """Train every HML stage (resuming where OUTPUT_DIR left off), with the other frameworks the
    config stacks on HML; ``hooks`` run inside every iteration of every stage, after HML's own."""
    if not cfg.MODEL.ROI_RELATION_HEAD.HML and "HML" not in cfg.MODEL.ROI_RELATION_HEAD.FRAMEWORKS:
        raise ValueError("train_hml needs MODEL.ROI_RELATION_HEAD.HML True")
    frameworks = build_frameworks(cfg)
    hml = next(f for f in frameworks if isinstance(f, HMLFramework))
    FrameworkRunner(cfg, ctx, frameworks, hooks).run()
    return hml.result


def run_stages(framework: HMLFramework, runner: FrameworkRunner) -> HMLResult:
    """HML's plan: one freshly built model per stage, each trained by ``runner`` (with the stacked
    frameworks' hooks and state), the stage k-1 model as stage k's teacher."""
    cfg, ctx, settings = runner.cfg, runner.ctx, framework.settings
    statistics = get_dataset_statistics(cfg)
    train_counts = train_predicate_counts(statistics)
    tree = load_tree(settings, ["__background__"] + list(statistics["rel_classes"][1:]), train_counts)
    ctx.logger.info("HML (%s mode) predicate tree:\n%s", settings.mode, "\n".join(tree.report()))
    num_stages = resolve_num_stages(settings, tree.num_layers)
    datasets = build_dataset(cfg, cfg.DATASETS.TRAIN)

    importance: Optional[ImportanceState] = None
    reports: List[Dict[str, Any]] = []
    teacher: Optional[RelationTeacher] = None
    model: Optional[torch.nn.Module] = None
    for stage in range(1, num_stages + 1):
        iterations = settings.stage_iterations(stage, cfg.SOLVER.MAX_ITER)
        stage_cfg = stage_config(cfg, iterations)
        stage_dir = os.path.join(cfg.OUTPUT_DIR, f"stage{stage}")
        plan = StagePlan(settings, tree, stage, datasets)
        seed_all(settings.seed + stage)
        previous_predictor = model.roi_heads.relation.predictor if model is not None else None
        model = None  # free the previous stage's model before building the next one
        model = build_relation_model(stage_cfg, ctx)
        head = model.roi_heads.relation
        predictor = head.predictor
        if settings.init_from_previous and previous_predictor is not None:
            predictor.load_state_dict(previous_predictor.state_dict())
        previous_predictor = None
        head.loss_evaluator.rel_class_weights = plan.class_weights
        named = mr_parameters(predictor, settings.param_filter)
        if importance is None:
            importance = ImportanceState(named, **settings.importance_kwargs())
        else:
            importance.bind(named)
        teacher_logits = None
        if teacher is not None:
            teacher_logits = teacher_source(teacher, settings, cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR, ctx.logger)
            framework.stage_terms = StageTerms(teacher_logits, plan.cr_loss(), plan.cr_weight, importance,
                                               plan.mr_weight, plan.mr_distance, settings.fused_mr_grad)
        ctx.logger.info("HML stage %d of %d: %d predicates (%d old), %d of %d images, %d iterations, "
                        "CR weight %.4g, MR weight %.4g", stage, num_stages, len(plan.new_classes),
                        len(plan.old_classes), plan.images_kept, plan.images_total, iterations,
                        plan.cr_weight if teacher is not None else 0.0, plan.mr_weight if teacher is not None else 0.0)
        report_file = os.path.join(stage_dir, STAGE_REPORT)
        if os.path.isfile(report_file):
            ctx.logger.info("HML stage %d is complete (%s): reloading its final model and importance", stage,
                            report_file)
            model.load_state_dict(load_checkpoint_file(os.path.join(stage_dir, "model_final.pth"))["model"])
            importance.load_state_dict(torch.load(os.path.join(stage_dir, IMPORTANCE_FINAL), weights_only=True))
            with open(report_file) as f:
                reports.append(json.load(f))
        else:
            losses = LossWindow()
            runner.train(stage_cfg, model=model, output_dir=stage_dir, index_filter=plan.layer_filter,
                         hooks=[ImportanceHook(importance), losses],
                         extra_state={IMPORTANCE_STATE_KEY: importance, LOSS_WINDOW_KEY: losses})
            importance_stats = importance.finalize_stage()
            report = plan.report(tree, train_counts, iterations)
            report.update(final_losses=losses.medians(), importance=importance_stats,
                          parameter_importance=_parameter_importance(importance))
            if isinstance(teacher_logits, TeacherLogitCache):
                report["teacher_cache"] = {"images": len(teacher_logits.entries), "hits": teacher_logits.hits,
                                           "misses": teacher_logits.misses,
                                           "mib": round(teacher_logits.num_bytes / 2 ** 20, 2)}
            _finish_stage(stage_dir, importance, report)
            reports.append(report)
        framework.stage_terms = None
        teacher = RelationTeacher.from_head(head)
    _tag_final_model(cfg.OUTPUT_DIR, num_stages)
    return HMLResult(model, importance, reports)


def teacher_source(teacher: RelationTeacher, settings: HMLSettings, predictor_name: str,
                   logger: logging.Logger) -> Union[RelationTeacher, TeacherLogitCache]:
    """The teacher's logits per batch: through a per-image cache where that is exact, else per step."""
    if not settings.teacher_cache:
        return teacher
    if predictor_name not in PAIR_INDEPENDENT_PREDICTORS:
        logger.info("HML.TEACHER_CACHE: %s scores a pair from the other sampled pairs too; the teacher "
                        "runs at every step", predictor_name)
        return teacher
    return TeacherLogitCache(teacher)


def _parameter_importance(importance: ImportanceState) -> Dict[str, Dict[str, float]]:
    """Mean parent Fisher / Omega per MR parameter, with its element count (for the plots)."""
    means = importance.parameter_means()
    sizes = dict(zip(importance.names, (int(np.prod(s)) for s in importance.shapes)))
    return {name: {**values, "numel": sizes[name]} for name, values in means.items()}


def _finish_stage(stage_dir: str, importance: ImportanceState, report: Dict[str, Any]) -> None:
    """Write the handed-over importance, then the report that marks the stage complete (main process)."""
    if is_main_process():
        with atomic_path(os.path.join(stage_dir, IMPORTANCE_FINAL)) as tmp:
            torch.save(importance.state_dict(), tmp)
        with atomic_path(os.path.join(stage_dir, STAGE_REPORT)) as tmp, open(tmp, "w") as f:
            json.dump(report, f, indent=1)
    synchronize()


def _tag_final_model(output_dir: str, num_stages: int) -> None:
    """OUTPUT_DIR/last_checkpoint -> the last stage's final model."""
    if is_main_process():
        with atomic_path(os.path.join(output_dir, "last_checkpoint")) as tmp, open(tmp, "w") as f:
            f.write(os.path.join(f"stage{num_stages}", "model_final.pth"))
    synchronize()
