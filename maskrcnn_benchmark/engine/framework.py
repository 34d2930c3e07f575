"""Training frameworks: the one interface through which a method such as HML reaches relation training.

A framework is a class registered in ``TRAINING_FRAMEWORKS`` under a name and
selected by ``MODEL.ROI_RELATION_HEAD.FRAMEWORKS`` (a list, so several can be
stacked; ``MODEL.ROI_RELATION_HEAD.HML True`` is shorthand for adding "HML").
The benchmark knows only this interface; a framework package registers its
classes when it is imported (the tools import them).

What a framework may do, each optional (the defaults change nothing):

* ``prepare(model)``: once per model before training or testing, e.g. add its
  trainable modules under ``roi_heads.relation.framework_modules[name]``, set the
  relation loss's class weights, or replace the relation scores at test time.
* ``relation_losses(batch, losses)``: the training losses of a batch, given the
  head's own (``loss_rel``, ``loss_refine_obj``, predictor terms); it may replace
  terms or add its own. ``batch`` is the ``RelationBatch`` the head saw.
* ``train_hooks()``: ``TrainHook`` callbacks inside every iteration.
* ``state()``: objects with ``state_dict`` / ``load_state_dict`` kept in checkpoints.
* ``report(outcome)``: with ``report_file`` set, a JSON-able summary of the run (settings,
  what the framework did, the last iteration's loss terms) written to
  ``<output dir>/<report_file>`` after the last iteration of each training run (each
  stage's run under a planner).
* ``run(runner)``: a multi-stage framework runs its own plan; ``runner`` trains
  one stage with every stacked framework's hooks (``FrameworkRunner.train``).

``claims`` names the parts of training a framework takes over (``PARTS``); two
frameworks that claim the same part cannot be stacked, and the error names both.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence

import torch

from maskrcnn_benchmark.modeling.registry import Registry
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.checkpoint import unwrap_model
from maskrcnn_benchmark.utils.comm import is_main_process

from .defaults import RunContext
from .relation_train import build_relation_model, train_relation_model
from .trainer import StepOutcome, TrainHook

TRAINING_FRAMEWORKS = Registry("training framework (MODEL.ROI_RELATION_HEAD.FRAMEWORKS)")

# Parts of relation training a framework can take over; one owner each.
PARTS = {
    "class_weights": "the relation loss's per-predicate weights",
    "relation_loss": "the relation loss itself (loss_rel)",
    "relation_scores": "the relation scores at test time",
    "stages": "the training plan (several runs)",
}


class TrainingFramework:
    """Base class: override what the method changes (see the module docstring)."""

    name: str = ""
    claims: FrozenSet[str] = frozenset()
    report_file: str = ""  # e.g. "lskd_report.json"; empty = no run report

    @classmethod
    def from_config(cls, cfg, statistics: Mapping[str, Any]) -> "TrainingFramework":
        """Build from the config and the training set's statistics (``get_dataset_statistics``)."""
        return cls()

    def prepare(self, model: torch.nn.Module) -> None:
        pass

    def relation_losses(self, batch: Any, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return losses

    def train_hooks(self) -> List[TrainHook]:
        return []

    def state(self) -> Dict[str, Any]:
        return {}

    def report(self, outcome: StepOutcome) -> Dict[str, Any]:
        """The run report (see ``report_file``), given the last iteration's outcome."""
        return {"framework": self.name, "final_losses": dict(outcome.losses)}

    def run(self, runner: "FrameworkRunner") -> torch.nn.Module:
        """Train; single-run frameworks leave this to the runner."""
        return runner.train(runner.cfg)


class RunReportHook(TrainHook):
    """Writes ``report(outcome)`` as JSON to ``path`` (atomically, main process) after the optimizer
    step of ``max_iter``."""

    def __init__(self, path: str, max_iter: int, report: Callable[[StepOutcome], Dict[str, Any]]) -> None:
        self.path = path
        self.max_iter = max_iter
        self.report = report

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        if iteration != self.max_iter or not is_main_process():
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with atomic_path(self.path) as tmp, open(tmp, "w") as f:
            json.dump(self.report(outcome), f, indent=1)


def framework_names(cfg) -> List[str]:
    """The frameworks the config selects, in order (HML True adds "HML" when it is not listed)."""
    names = list(cfg.MODEL.ROI_RELATION_HEAD.FRAMEWORKS)
    if cfg.MODEL.ROI_RELATION_HEAD.HML and "HML" not in names:
        names.append("HML")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.FRAMEWORKS lists {duplicates[0]!r} twice")
    return names


def check_stackable(claims: Mapping[str, FrozenSet[str]]) -> None:
    """Raise ValueError naming both frameworks when two of ``{name: claims}`` claim the same part."""
    owner: Dict[str, str] = {}
    for name, parts in claims.items():
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"framework {name!r} claims unknown parts {sorted(unknown)}; known: {sorted(PARTS)}")
        for part in sorted(parts):
            if part in owner:
                raise ValueError(f"frameworks {owner[part]!r} and {name!r} cannot be stacked: "
                                 f"both change {PARTS[part]}")
            owner[part] = name


def build_frameworks(cfg, statistics: Optional[Mapping[str, Any]] = None) -> List[TrainingFramework]:
    """The selected frameworks, built from the config, checked for conflicts."""
    names = framework_names(cfg)
    if not names:
        return []
    check_stackable({name: TRAINING_FRAMEWORKS[name].claims for name in names})
    if statistics is None:
        from maskrcnn_benchmark.data.build import get_dataset_statistics
        statistics = get_dataset_statistics(cfg)
    frameworks = []
    for name in names:
        framework = TRAINING_FRAMEWORKS[name].from_config(cfg, statistics)
        framework.name = name
        frameworks.append(framework)
    return frameworks


def attach_frameworks(model: torch.nn.Module, frameworks: Sequence[TrainingFramework]) -> None:
    """``prepare`` each framework on ``model`` and route the relation head's losses through them."""
    head = unwrap_model(model).roi_heads.relation
    for framework in frameworks:
        framework.prepare(model)
    head.loss_hooks = [framework.relation_losses for framework in frameworks]


class FrameworkRunner:
    """Trains the relation head with the stacked frameworks; one framework may own the plan ("stages")."""

    def __init__(self, cfg, ctx: RunContext, frameworks: Sequence[TrainingFramework],
                 extra_hooks: Sequence[TrainHook] = ()) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.frameworks = list(frameworks)
        self.extra_hooks = list(extra_hooks)
        self.logger: logging.Logger = ctx.logger

    def run(self) -> torch.nn.Module:
        planners = [f for f in self.frameworks if "stages" in f.claims]
        if planners:
            return planners[0].run(self)
        return self.train(self.cfg)

    def train(self, cfg, *, model: Optional[torch.nn.Module] = None, output_dir: Optional[str] = None,
              index_filter: Optional[Callable[[Any], Any]] = None, hooks: Sequence[TrainHook] = (),
              extra_state: Optional[Dict[str, Any]] = None) -> torch.nn.Module:
        """One training run of ``cfg`` (a stage's config for planners) with every framework attached.

        ``hooks`` and ``extra_state`` come first (a planner's own), then each framework's.
        """
        model = model if model is not None else build_relation_model(cfg, self.ctx)
        attach_frameworks(model, self.frameworks)
        folder = output_dir if output_dir is not None else cfg.OUTPUT_DIR
        reports = [RunReportHook(os.path.join(folder, f.report_file), cfg.SOLVER.MAX_ITER, f.report)
                   for f in self.frameworks if f.report_file and folder]
        all_hooks = (list(hooks) + [hook for f in self.frameworks for hook in f.train_hooks()] + reports
                     + self.extra_hooks)
        state = dict(extra_state or {})
        for framework in self.frameworks:
            for key, obj in framework.state().items():
                if key in state:
                    raise ValueError(f"framework {framework.name!r} checkpoint state {key!r} is already taken")
                state[key] = obj
        return train_relation_model(cfg, self.ctx, output_dir=output_dir, model=model, index_filter=index_filter,
                                    hooks=all_hooks, extra_state=state)


def train_with_frameworks(cfg, ctx: RunContext, hooks: Sequence[TrainHook] = ()) -> torch.nn.Module:
    """Train the relation head as the config says (plain when no framework is selected)."""
    frameworks = build_frameworks(cfg)
    if frameworks:
        ctx.logger.info("Training frameworks: %s", ", ".join(f.name for f in frameworks))
    return FrameworkRunner(cfg, ctx, frameworks, hooks).run()


def prepare_for_testing(cfg, model: torch.nn.Module) -> List[TrainingFramework]:
    """Build and ``prepare`` the selected frameworks on a model about to be tested (test-time scores,
    extra modules a checkpoint holds)."""
    frameworks = build_frameworks(cfg)
    attach_frameworks(model, frameworks)
    return frameworks
