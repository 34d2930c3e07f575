"""Detector pretraining and box evaluation, as the benchmark's detector tools run them.

Training includes the RPN and box-head losses (MODEL.RELATION_ON False), starts
from MODEL.WEIGHT (an ImageNet backbone, or nothing) unless OUTPUT_DIR has a
``last_checkpoint``, and is validated by COCO box mAP@0.5 (the benchmark's "mAp").
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import torch

from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.data.datasets.evaluation.vg.coco_boxes import BoxCollector
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.checkpoint import unwrap_model
from maskrcnn_benchmark.utils.comm import broadcast_from_main, is_main_process, synchronize
from maskrcnn_benchmark.utils.tensorboard import TensorboardLogger

from .defaults import RunContext
from .inference_loop import run_inference
from .trainer import do_train
from .training_setup import build_optimization, make_checkpointer, wrap_distributed


def box_inference(cfg, model: torch.nn.Module, data_loader: Any, dataset_name: str, device: torch.device,
                  output_folder: Optional[str] = None, logger: Optional[logging.Logger] = None) -> Dict[str, Any]:
    """Detect on ``data_loader`` and return the COCO box metrics (``mAP50``, ``coco_stats``) on every rank."""
    logger = logger or logging.getLogger("maskrcnn_benchmark.inference")
    dataset = data_loader.dataset
    collector = BoxCollector()

    def on_batch(image_ids: Sequence[int], outputs: Sequence[BoxList]) -> None:
        for index, detections in zip(image_ids, outputs):
            groundtruth = dataset.get_groundtruth(index, evaluation=True)
            detections = detections.resize(groundtruth.size)
            collector.add(index, groundtruth.convert("xyxy").bbox.numpy(), groundtruth.get_field("labels").numpy(),
                          detections.convert("xyxy").bbox.numpy(), detections.get_field("pred_scores").numpy(),
                          detections.get_field("pred_labels").numpy())

    logger.info("Evaluating boxes on %s (%d images)", dataset_name, len(dataset))
    run_inference(model, data_loader, device, on_batch, desc=f"test {dataset_name}", logger=logger)
    collector.gather()
    result = collector.evaluate(legacy_ann_ids=cfg.TEST.COCO_LEGACY_ANN_IDS) if is_main_process() else None
    result = broadcast_from_main(result)
    if is_main_process():
        logger.info("Detection evaluation mAp=%.4f (COCO AP at IoU 0.50) on %s", result["mAP50"], dataset_name)
        for name, value in zip(result["coco_stat_names"], result["coco_stats"]):
            logger.info("  %-45s %.4f", name, value)
        if output_folder:
            os.makedirs(output_folder, exist_ok=True)
            with atomic_path(os.path.join(output_folder, "box_metrics.json")) as tmp, open(tmp, "w") as f:
                json.dump(result, f, indent=1)
    return result


def train_detector(cfg, ctx: RunContext) -> torch.nn.Module:
    """Train the detector for SOLVER.MAX_ITER iterations; returns the unwrapped model."""
    if cfg.MODEL.RELATION_ON:
        raise ValueError("Detector pretraining needs MODEL.RELATION_ON False")
    model = build_detection_model(cfg).to(ctx.device)
    optimization = build_optimization(cfg, model, ctx)
    model = wrap_distributed(model, ctx, find_unused_parameters=False)
    checkpointer = make_checkpointer(cfg, model, optimization, cfg.OUTPUT_DIR, ctx)
    arguments: Dict[str, Any] = {"iteration": 0}
    arguments.update(checkpointer.load(cfg.MODEL.WEIGHT, update_schedule=cfg.SOLVER.UPDATE_SCHEDULE_DURING_LOAD))

    train_loader = make_data_loader(cfg, "train", ctx.distributed, start_iter=arguments["iteration"])
    val_loaders = make_data_loader(cfg, "val", ctx.distributed) if cfg.SOLVER.TO_VAL else []

    def val_fn(unwrapped: torch.nn.Module) -> Optional[float]:
        maps = [box_inference(cfg, unwrapped, loader, name, ctx.device, logger=ctx.logger)["mAP50"]
                for loader, name in zip(val_loaders, cfg.DATASETS.VAL)]
        return float(sum(maps) / len(maps))

    do_train(model, train_loader, optimization.optimizer, optimization.scheduler, checkpointer, ctx.device,
             cfg.SOLVER.CHECKPOINT_PERIOD, arguments, max_iter=cfg.SOLVER.MAX_ITER,
             val_fn=val_fn if val_loaders else None, val_period=cfg.SOLVER.VAL_PERIOD,
             amp_dtype=optimization.amp_dtype, grad_scaler=optimization.grad_scaler,
             tensorboard=TensorboardLogger(os.path.join(cfg.OUTPUT_DIR, "tensorboard")), logger=ctx.logger)
    synchronize()
    return unwrap_model(model)


def evaluate_detector(cfg, model: torch.nn.Module, ctx: RunContext) -> List[Dict[str, Any]]:
    """Box mAP on every DATASETS.TEST set, written to OUTPUT_DIR/inference/<dataset>/box_metrics.json."""
    results = []
    for name, loader in zip(cfg.DATASETS.TEST, make_data_loader(cfg, "test", ctx.distributed)):
        folder = os.path.join(cfg.OUTPUT_DIR, "inference", name) if cfg.OUTPUT_DIR else None
        results.append(box_inference(cfg, model, loader, name, ctx.device, folder, ctx.logger))
        synchronize()
    return results
