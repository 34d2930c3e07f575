"""Relation training and testing as the benchmark's tools run them (REFERENCE 3.5 and 5).

The detector (backbone, RPN, box head) is frozen and initialised from
MODEL.PRETRAINED_DETECTOR_CKPT, with the box head's fc6/fc7 copied into the
relation head's two feature extractors; everything under ``roi_heads.relation``
trains. A ``last_checkpoint`` in the output folder takes precedence, so starting
the same command again resumes. Every checkpoint also carries the ``scene_graph_model``
entry (vocabulary, statistics, config), so it runs on new images without the dataset.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.scene_graphs.model_file import MODEL_FILE_KEY, model_file_entry
from maskrcnn_benchmark.utils.checkpoint import unwrap_model
from maskrcnn_benchmark.utils.comm import synchronize
from maskrcnn_benchmark.utils.tensorboard import TensorboardLogger

from .defaults import RunContext
from .relation_inference import relation_inference
from .trainer import StepOutcome, TrainHook, do_train
from .training_setup import build_optimization, make_checkpointer, rng_state, set_rng_state, wrap_distributed

FROZEN_DETECTOR_MODULES = ("backbone", "rpn", "roi_heads.box")
RELATION_LOAD_MAPPING = {
    "roi_heads.relation.box_feature_extractor": "roi_heads.box.feature_extractor",
    "roi_heads.relation.union_feature_extractor.feature_extractor": "roi_heads.box.feature_extractor",
}
IMP_SLOW_HEADS = ("roi_heads.relation.box_feature_extractor",
                  "roi_heads.relation.union_feature_extractor.feature_extractor")


def freeze_detector(model: torch.nn.Module) -> None:
    """requires_grad False on every detector parameter (the modules stay in train mode, as in the benchmark)."""
    for name, param in model.named_parameters():
        if name.startswith(FROZEN_DETECTOR_MODULES):
            param.requires_grad_(False)


def validation_recall(cfg, model: torch.nn.Module, loaders: Sequence[Any], device: torch.device,
                      ctx: RunContext) -> float:
    """Mean graph-constrained R@100 over the validation sets (the schedule's metric)."""
    recalls = [relation_inference(cfg, model, loader, name, device, logger=ctx.logger)["metrics"]["R@K"]["100"]
               for loader, name in zip(loaders, cfg.DATASETS.VAL)]
    return float(sum(recalls) / len(recalls))


def build_relation_model(cfg, ctx: RunContext) -> torch.nn.Module:
    """The detection model with its relation head, detector frozen, on ``ctx.device``."""
    model = build_detection_model(cfg)
    freeze_detector(model)
    return model.to(ctx.device)


def train_relation_model(cfg, ctx: RunContext, *, output_dir: Optional[str] = None,
                         model: Optional[torch.nn.Module] = None,
                         index_filter: Optional[Callable[[Any], Any]] = None, hooks: Sequence[TrainHook] = (),
                         extra_state: Optional[Dict[str, Any]] = None) -> torch.nn.Module:
    """Train the relation head for SOLVER.MAX_ITER iterations; returns the unwrapped model.

    ``output_dir`` defaults to OUTPUT_DIR; ``index_filter`` restricts the training
    images (see ``make_data_loader``); ``hooks`` run inside each iteration; the
    entries of ``extra_state`` (objects with ``state_dict`` / ``load_state_dict``)
    are saved in and restored from the checkpoints.
    """
    output_dir = output_dir or cfg.OUTPUT_DIR
    model = model if model is not None else build_relation_model(cfg, ctx)
    slow_heads = IMP_SLOW_HEADS if cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR == "IMPPredictor" else None
    optimization = build_optimization(cfg, model, ctx, slow_heads=slow_heads)
    model = wrap_distributed(model, ctx, find_unused_parameters=True)
    checkpointer = make_checkpointer(cfg, model, optimization, output_dir, ctx)

    arguments: Dict[str, Any] = {"iteration": 0}
    if checkpointer.has_checkpoint():
        arguments.update(checkpointer.load(update_schedule=cfg.SOLVER.UPDATE_SCHEDULE_DURING_LOAD))
    elif cfg.MODEL.PRETRAINED_DETECTOR_CKPT:
        checkpointer.load(cfg.MODEL.PRETRAINED_DETECTOR_CKPT, with_optim=False, load_mapping=RELATION_LOAD_MAPPING)
    else:
        ctx.logger.warning("MODEL.PRETRAINED_DETECTOR_CKPT is empty: the frozen detector keeps its random "
                           "initialisation (only sensible for tests)")
    for name, obj in (extra_state or {}).items():
        if name in arguments:
            obj.load_state_dict(arguments.pop(name))
    arguments[MODEL_FILE_KEY] = model_file_entry(cfg)

    train_loader = make_data_loader(cfg, "train", ctx.distributed, start_iter=arguments["iteration"],
                                    index_filter=index_filter)
    val_loaders = make_data_loader(cfg, "val", ctx.distributed) if cfg.SOLVER.TO_VAL else []
    set_rng_state(arguments.pop("rng", None))  # after the loaders, which draw their seeds from the stream

    def val_fn(unwrapped: torch.nn.Module) -> Optional[float]:
        return validation_recall(cfg, unwrapped, val_loaders, ctx.device, ctx) if val_loaders else None

    if val_loaders and cfg.SOLVER.PRE_VAL and arguments["iteration"] == 0:
        ctx.logger.info("Validating before training (SOLVER.PRE_VAL)")
        val_fn(unwrap_model(model))

    hooks = list(hooks) + [_CheckpointState(arguments, extra_state or {})]
    do_train(model, train_loader, optimization.optimizer, optimization.scheduler, checkpointer, ctx.device,
             cfg.SOLVER.CHECKPOINT_PERIOD, arguments, max_iter=cfg.SOLVER.MAX_ITER,
             val_fn=val_fn if val_loaders else None, val_period=cfg.SOLVER.VAL_PERIOD,
             grad_clip=cfg.SOLVER.GRAD_NORM_CLIP, amp_dtype=optimization.amp_dtype,
             grad_scaler=optimization.grad_scaler,
             tensorboard=TensorboardLogger(os.path.join(output_dir, "tensorboard")),
             grad_log_period=cfg.SOLVER.PRINT_GRAD_FREQ, hooks=hooks, logger=ctx.logger)
    synchronize()
    return unwrap_model(model)


class _CheckpointState(TrainHook):
    """Keeps the random generators' and the extra objects' states in ``arguments`` (saved with each checkpoint)."""

    def __init__(self, arguments: Dict[str, Any], extra_state: Dict[str, Any]) -> None:
        self.arguments = arguments
        self.extra_state = extra_state

    def after_step(self, iteration: int, model: torch.nn.Module, outcome: StepOutcome) -> None:
        self.arguments["rng"] = rng_state()
        for name, obj in self.extra_state.items():
            self.arguments[name] = obj.state_dict()


def evaluate_relation_model(cfg, model: torch.nn.Module, ctx: RunContext,
                        output_dir: Optional[str] = None) -> List[Dict[str, Any]]:
    """Evaluate on DATASETS.TO_TEST (train / val / test) and write OUTPUT_DIR/inference/<dataset>/."""
    output_dir = output_dir or cfg.OUTPUT_DIR
    mode = cfg.DATASETS.TO_TEST or "test"
    if mode not in ("train", "val", "test"):
        raise ValueError(f"DATASETS.TO_TEST should be train, val or test, got {cfg.DATASETS.TO_TEST!r}")
    names = {"train": cfg.DATASETS.TRAIN, "val": cfg.DATASETS.VAL, "test": cfg.DATASETS.TEST}[mode]
    loaders = _train_split_loaders(cfg, ctx) if mode == "train" else make_data_loader(cfg, mode, ctx.distributed)
    results = []
    for name, loader in zip(names, loaders):
        folder = os.path.join(output_dir, "inference", name) if output_dir else None
        results.append(relation_inference(cfg, model, loader, name, ctx.device, folder, ctx.logger))
        synchronize()
    return results


def _train_split_loaders(cfg, ctx: RunContext) -> List[Any]:
    """Test-style loaders (no shuffle, test transforms) over the training split."""
    test_cfg = cfg.clone()
    test_cfg.defrost()
    test_cfg.DATASETS.TEST = cfg.DATASETS.TRAIN
    test_cfg.freeze()
    return make_data_loader(test_cfg, "test", ctx.distributed)
