"""Train-step cost of HML stage 2 relative to plain relation training (same model, batch and dims, CPU).

Builds two identical relation models from one config with MODEL.ROI_RELATION_HEAD.HML True in
PredCls (detector frozen as ``build_relation_model`` freezes it, random weights, random dataset
statistics, a one-word GloVe file of EMBED_DIM dimensions: values do not change the cost) and
feeds both the same batch of synthetic images (``--min-size`` short side, 4:3) with ground-truth
boxes and relations. Each step is the one of ``do_train``: forward, loss reduction and finite
check, backward, gradient clipping (SOLVER.GRAD_NORM_CLIP), SGD step (``make_optimizer``).

- baseline: the plain step (the HML model with no framework attached, i.e. plain MOTIFS).
- hml: HML stage 2 as ``hml_patch.stages.train_hml`` sets it up: the HML model first trains a
  short "stage 1" (``--stage1-steps``, with the importance hook) and finishes it
  (``finalize_stage``); then the teacher is ``RelationTeacher.from_head`` of its head, the
  stage-2 class weights, CR and MR come from ``StagePlan`` (paper mode by default, tree
  ``frequency:10``: the 10 most frequent predicates are the old classes) and every step runs
  the stages' ``ImportanceHook`` around the optimizer step (and after the backward, where it adds the
  fused MR gradient: pass ``HML.FUSED_MR_GRAD True``; the default is the autograd penalty).

The two variants alternate step by step (A B A B ...), warm-up steps excluded; medians over
``--steps``. Besides the timings, inline timers around the teacher forward, the CR and MR
forwards, the fused MR gradient's addition and the importance update, and per-phase medians (forward, backward, clip, optimizer,
hooks) of both variants give a breakdown of the extra time. On a shared machine the wall times
are noisy: ``paired_ratio`` (median of the per-pair ratios) and ``cpu_ratio`` (process CPU time)
are reported as cross-checks. The last output line is one JSON object: baseline_s, hml_s, ratio,
paired_ratio, cpu_ratio, num_mr_params, fused_mr_grad, image_size, batch, threads, phases, breakdown,
step_s, ...

Defaults (the X-101-32x8d-FPN MOTIFS config at 427x320, batch 1, 10 steps, 1 thread) take about
3 minutes on a 2-core machine; 1 thread because on a shared 2-core machine 2 threads made every
step 2-3x slower and far noisier. ``--min-size 600 --batch 2`` is the yaml's training size.

    python benchmarks/hml_overhead.py [--min-size 320] [--batch 1] [--steps 10] [--threads 1] [KEY VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from unittest import mock

import torch

import hml_patch  # noqa: F401  (adds the HML config group, registers the HML framework)
from hml_patch.config import HMLSettings
from hml_patch.importance import ImportanceState, backend_name
from hml_patch.official import official_constants
from hml_patch.framework import HMLFramework, StageTerms, mr_parameters
from hml_patch.stages import ImportanceHook, StagePlan, load_tree, teacher_source
from hml_patch.teacher import RelationTeacher
from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.engine.framework import attach_frameworks
from maskrcnn_benchmark.engine.relation_train import freeze_detector
from maskrcnn_benchmark.engine.trainer import StepOutcome, TrainHook, check_finite, reduce_loss_dict
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.roi_heads.relation_head import relation_head
from maskrcnn_benchmark.modeling.roi_heads.relation_head.word_vectors import glove_file_stem
from maskrcnn_benchmark.solver import make_optimizer
from random_relation_batch import random_relation_batch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml")
PHASES = ("forward", "backward", "clip", "hooks", "optimizer")
PARTS = ("teacher_forward", "cr_forward", "mr_forward", "mr_gradient", "importance_update")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--predictor", default="MotifPredictor")
    parser.add_argument("--min-size", type=int, default=320, help="short image side (long side = 4/3 of it)")
    parser.add_argument("--batch", type=int, default=1, help="images per step")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant before the timed ones")
    parser.add_argument("--stage1-steps", type=int, default=2, help="HML stage-1 steps that fill the importance")
    parser.add_argument("--threads", type=int, default=1, help="torch (and importance kernel) threads")
    parser.add_argument("--hml-mode", choices=["paper", "official"], default="paper")
    parser.add_argument("--tree", default="frequency:10", help="HML.TREE (paper mode; official mode uses '')")
    parser.add_argument("--no-teacher-cache", action="store_true",
                        help="HML.TEACHER_CACHE False: run the teacher at every step (the cache's first visit of "
                             "an image costs this much; the default measures the cached steady state)")
    parser.add_argument("--boxes", type=int, default=12, help="ground-truth boxes per image")
    parser.add_argument("--rels", type=int, default=6, help="ground-truth relations per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


class PhaseTimer:
    """Seconds per named phase within the current step (a phase entered twice adds up)."""

    def __init__(self) -> None:
        self.current: Dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.current[name] += time.perf_counter() - start

    def wrap(self, name: str, fn: Callable) -> Callable:
        """``fn`` with its calls timed under ``name``."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)
        return timed

    def take(self) -> Dict[str, float]:
        step, self.current = dict(self.current), defaultdict(float)
        return step


class TimedImportance:
    """The importance state as StageTerms sees it, with ``mr_penalty`` / ``fused_mr_penalty`` (the
    forward) timed."""

    def __init__(self, state: ImportanceState, timer: PhaseTimer) -> None:
        self.mr_penalty = timer.wrap("mr_forward", state.mr_penalty)
        self.fused_mr_penalty = timer.wrap("mr_forward", state.fused_mr_penalty)


class TimedHook(TrainHook):
    """A train hook whose before/after-step work is timed under ``name``, its after-backward work
    under ``backward_name``."""

    def __init__(self, hook: TrainHook, timer: PhaseTimer, name: str, backward_name: str) -> None:
        self.hook, self.timer, self.name, self.backward_name = hook, timer, name, backward_name

    def after_backward(self, iteration: int, model: torch.nn.Module) -> None:
        with self.timer(self.backward_name):
            self.hook.after_backward(iteration, model)

    def before_step(self, iteration: int, model: torch.nn.Module) -> None:
        with self.timer(self.name):
            self.hook.before_step(iteration, model)

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        with self.timer(self.name):
            self.hook.after_step(iteration, model, outcome)


class Variant:
    """One model with its optimizer; ``step`` does the per-iteration work of ``do_train`` in its order
    (without data loading, logging, schedule and checkpoints)."""

    def __init__(self, cfg, model: torch.nn.Module, batch: int, timer: PhaseTimer) -> None:
        self.model = model
        self.optimizer = make_optimizer(cfg, model, rl_factor=float(batch))
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.grad_clip = cfg.SOLVER.GRAD_NORM_CLIP
        self.timer = timer
        self.hooks: List[TrainHook] = []
        self.iteration = 0
        self.times: List[Dict[str, float]] = []
        self.loss_terms: List[str] = []

    def step(self, images, targets, record: bool) -> None:
        timer = self.timer
        self.iteration += 1
        timer.take()
        cpu_start = time.process_time()
        with timer("forward"):
            loss_dict = self.model(images, targets)
            losses = sum(loss_dict.values())
            reduced = reduce_loss_dict(loss_dict)
            check_finite(reduced, self.iteration)
            self.loss_terms = sorted(reduced)
            outcome = StepOutcome(loss=float(sum(reduced.values())),
                                  losses={name: float(value) for name, value in reduced.items()})
        with timer("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            losses.backward()
        with timer("hooks"):
            for hook in self.hooks:
                hook.after_backward(self.iteration, self.model)
        with timer("clip"):
            if self.grad_clip:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.grad_clip))
                outcome.clip_coef = min(1.0, self.grad_clip / (grad_norm + 1e-6))
        with timer("hooks"):
            for hook in self.hooks:
                hook.before_step(self.iteration, self.model)
        with timer("optimizer"):
            self.optimizer.step()
        with timer("hooks"):
            for hook in self.hooks:
                hook.after_step(self.iteration, self.model, outcome)
        step = timer.take()
        if record:
            step["total"] = sum(step[phase] for phase in PHASES)
            step["cpu"] = time.process_time() - cpu_start
            self.times.append(step)

    def median(self, key: str) -> float:
        return statistics.median(t.get(key, 0.0) for t in self.times)


def build_config(args: argparse.Namespace, glove_dir: str):
    cfg = default_cfg.clone()
    cfg.merge_from_file(args.config)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.ROI_RELATION_HEAD.PREDICTOR", args.predictor,
                         "MODEL.ROI_RELATION_HEAD.HML", True, "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", True,
                         "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", True, "MODEL.PRETRAINED_DETECTOR_CKPT", "",
                         "HML.MODE", args.hml_mode, "HML.TREE", args.tree if args.hml_mode == "paper" else "",
                         "HML.TEACHER_CACHE", str(not args.no_teacher_cache)])
    cfg.merge_from_list(list(args.opts))
    cfg.GLOVE_DIR = glove_dir
    cfg.freeze()
    return cfg


def random_statistics(num_classes: int, num_predicates: int, seed: int) -> Dict[str, Any]:
    """Dataset statistics with VG150 predicate names (so official mode finds its constants) and
    long-tailed random predicate counts (for the frequency tree)."""
    generator = torch.Generator().manual_seed(seed)
    vg_names = official_constants()["predicate_names"][1:]
    names = [vg_names[i] if i < len(vg_names) else f"predicate{i}" for i in range(num_predicates - 1)]
    fg_matrix = torch.zeros(num_classes, num_classes, num_predicates, dtype=torch.int64)
    counts = (10_000 / torch.arange(1, num_predicates).double() ** 1.5).long() + 1
    fg_matrix[1, 2, 1:] = counts[torch.randperm(num_predicates - 1, generator=generator)]
    return {"obj_classes": ["__background__"] + [f"class{i}" for i in range(1, num_classes)],
            "rel_classes": ["__background__"] + names, "att_classes": ["__background__"],
            "fg_matrix": fg_matrix, "pred_dist": torch.randn(num_classes, num_classes, num_predicates,
                                                              generator=generator)}


def synthetic_batch(cfg, batch: int, min_size: int, num_boxes: int, num_rels: int, seed: int):
    """Images already at the training size (short side ``min_size``, 4:3) and ground-truth targets."""
    height, width = min_size, round(min_size * 4 / 3)
    images, targets = random_relation_batch(batch, (width, height), num_boxes, num_rels,
                                            cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES,
                                            8.0, cfg.DATALOADER.SIZE_DIVISIBILITY, seed)
    return images, targets, (width, height)


def build_model(cfg, statistics_: Dict[str, Any], seed: int) -> torch.nn.Module:
    """The relation model of ``build_relation_model`` (CPU), initialised from ``seed``."""
    torch.manual_seed(seed)
    with mock.patch.object(relation_head, "get_dataset_statistics", lambda config: statistics_):
        model = build_detection_model(cfg)
    freeze_detector(model)
    return model.train()


def setup_stage2(cfg, hml: Variant, statistics_: Dict[str, Any], images, targets, stage1_steps: int,
                 timer: PhaseTimer) -> Tuple[ImportanceState, StagePlan]:
    """Stage 1 on the HML model (filling the importance), then stage 2 as ``train_hml`` attaches it."""
    settings = HMLSettings.from_config(cfg)
    counts = [int(c) for c in statistics_["fg_matrix"].sum(dim=(0, 1))]
    counts[0] = 0
    tree = load_tree(settings, statistics_["rel_classes"], counts)
    head = hml.model.roi_heads.relation
    predictor = head.predictor
    importance = ImportanceState(mr_parameters(predictor, settings.param_filter), **settings.importance_kwargs())
    hml.hooks = [TimedHook(ImportanceHook(importance), timer, "importance_update", "mr_gradient")]
    for _ in range(stage1_steps):
        hml.step(images, targets, record=False)
    importance.finalize_stage()
    plan = StagePlan(settings, tree, 2, [])
    head.loss_evaluator.rel_class_weights = plan.class_weights
    teacher = teacher_source(RelationTeacher.from_head(head), settings, cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR,
                             logging.getLogger("hml_overhead"))
    framework = HMLFramework(settings)
    framework.stage_terms = StageTerms(timer.wrap("teacher_forward", teacher), timer.wrap("cr_forward", plan.cr_loss()),
                                       plan.cr_weight, TimedImportance(importance, timer), plan.mr_weight,
                                       plan.mr_distance, settings.fused_mr_grad)
    attach_frameworks(hml.model, [framework])
    return importance, plan


def run(args: argparse.Namespace) -> Dict[str, Any]:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as glove_dir:
        cfg = build_config(args, glove_dir)
        with open(os.path.join(glove_dir, glove_file_stem(cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM) + ".txt"), "w") as f:
            f.write("start " + " ".join(["0.1"] * cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM) + "\n")
        stats = random_statistics(cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES,
                                  args.seed)
        timer = PhaseTimer()
        baseline = Variant(cfg, build_model(cfg, stats, args.seed), args.batch, timer)
        hml = Variant(cfg, build_model(cfg, stats, args.seed), args.batch, timer)
    images, targets, image_size = synthetic_batch(cfg, args.batch, args.min_size, args.boxes, args.rels, args.seed)
    importance, plan = setup_stage2(cfg, hml, stats, images, targets, args.stage1_steps, timer)
    for step in range(args.warmup + args.steps):
        for variant in (baseline, hml):
            variant.step(images, targets, record=step >= args.warmup)

    phases = {phase: {"baseline": baseline.median(phase), "hml": hml.median(phase)} for phase in PHASES}
    breakdown = {part: hml.median(part) for part in PARTS}
    breakdown["backward_extra"] = phases["backward"]["hml"] - phases["backward"]["baseline"]
    breakdown["forward_extra_other"] = (phases["forward"]["hml"] - phases["forward"]["baseline"]
                                        - breakdown["teacher_forward"] - breakdown["cr_forward"]
                                        - breakdown["mr_forward"])
    baseline_s, hml_s = baseline.median("total"), hml.median("total")
    paired = statistics.median(h["total"] / b["total"] for b, h in zip(baseline.times, hml.times))
    return {
        "baseline_s": round(baseline_s, 4), "hml_s": round(hml_s, 4), "ratio": round(hml_s / baseline_s, 4),
        "paired_ratio": round(paired, 4), "cpu_ratio": round(hml.median("cpu") / baseline.median("cpu"), 4),
        "num_mr_params": importance.num_params, "fused_mr_grad": bool(cfg.HML.FUSED_MR_GRAD),
        "trainable_params": sum(p.numel() for p in baseline.trainable),
        "image_size": list(image_size), "batch": args.batch, "boxes": args.boxes, "rels": args.rels,
        "threads": torch.get_num_threads(), "steps": args.steps, "warmup": args.warmup,
        "config": os.path.relpath(args.config, REPO), "predictor": args.predictor, "hml_mode": args.hml_mode,
        "old_classes": len(plan.old_classes), "importance_backend": backend_name(importance.device),
        "teacher_cache": not args.no_teacher_cache,
        "loss_terms": {"baseline": baseline.loss_terms, "hml": hml.loss_terms},
        "phases": {phase: {k: round(v, 4) for k, v in values.items()} for phase, values in phases.items()},
        "breakdown": {part: round(v, 4) for part, v in breakdown.items()},
        "step_s": {"baseline": [round(t["total"], 4) for t in baseline.times],
                   "hml": [round(t["total"], 4) for t in hml.times]},
    }


def summary_lines(result: Dict[str, Any]) -> List[str]:
    """A readable breakdown of where HML's extra time goes (printed before the JSON line)."""
    extra = result["hml_s"] - result["baseline_s"]
    width, height = result["image_size"]
    lines = [(f"{result['config']} {result['predictor']} PredCls, image {width}x{height}, batch {result['batch']}, "
              f"{result['threads']} threads, median of {result['steps']} steps"),
             (f"baseline {result['baseline_s']:.3f} s  hml {result['hml_s']:.3f} s  ratio {result['ratio']:.3f}  "
              f"(extra {extra:.3f} s), P = {result['num_mr_params']:,}, MR gradient "
              f"{'fused' if result['fused_mr_grad'] else 'through autograd'}"),
             f"median of per-pair ratios {result['paired_ratio']:.3f}, CPU-time ratio {result['cpu_ratio']:.3f}",
             "phase          baseline_s    hml_s     diff_s"]
    for phase, values in result["phases"].items():
        lines.append(f"{phase:<12s} {values['baseline']:>10.3f} {values['hml']:>9.3f} "
                     f"{values['hml'] - values['baseline']:>+10.3f}")
    lines.append("extra HML time by part (s, median per step):")
    lines.extend(f"  {part:<20s} {value:>8.3f}" for part, value in result["breakdown"].items())
    return lines


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    print("\n".join(summary_lines(result)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
