"""Scene-graph inference on a dataset: sharded forward passes feeding the streaming evaluator.

Each process evaluates its own shard as the predictions arrive (nothing of a
split is held in memory except, on request, a compact copy of the predictions
for visualisation); the evaluator's sums are then all-reduced and rank 0 writes
``OUTPUT_DIR/inference/<dataset>/``:

- ``metrics.json``: every number, the per-predicate lists and the protocol flags;
- ``result_dict.json``: the benchmark's ``result_dict`` container names
  (``<mode>_recall``, ``<mode>_mean_recall`` ...), built from the same numbers;
- ``visual_info.json``: per image, the file, GT boxes and labels, and which
  entry of ``predictions.pth`` holds its prediction (with ``TEST.SAVE_PREDICTIONS``);
- ``predictions.pth``: per image the predicted boxes, labels, scores and the
  best ``TEST.SAVE_PREDICTIONS_TOP_REL`` relations (weights-only loadable).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist

from maskrcnn_benchmark.data.build import get_dataset_statistics
from maskrcnn_benchmark.data.datasets.evaluation.psg_evaluator import build_relation_evaluator
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.comm import broadcast_from_main, get_world_size, is_main_process

from .inference_loop import run_inference

KS = (20, 50, 100)


def compact_prediction(prediction: BoxList, top_relations: int) -> Dict[str, torch.Tensor]:
    """The parts of one image's scene graph worth keeping on disk (relations already sorted)."""
    pairs = prediction.get_field("rel_pair_idxs")[:top_relations]
    return {
        "boxes": prediction.convert("xyxy").bbox.clone(),
        "labels": prediction.get_field("pred_labels").clone(),
        "scores": prediction.get_field("pred_scores").clone(),
        "rel_pairs": pairs.clone(),
        "rel_labels": prediction.get_field("pred_rel_labels")[:top_relations].clone(),
        "rel_scores": prediction.get_field("pred_rel_scores")[:top_relations].max(dim=1).values.clone(),
    }


def result_dict_from_metrics(result: Dict[str, Any]) -> Dict[str, Any]:
    """The benchmark's ``result_dict`` layout (per-K lists reduced to their means) from ``metrics.json``."""
    mode = result["protocol"]["mode"]
    metrics = result["metrics"]
    names = {"R@K": "recall", "ngR@K": "recall_nogc", "mR@K": "mean_recall", "ng-mR@K": "ng_mean_recall",
             "zR@K": "zeroshot_recall", "ng-zR@K": "ng_zeroshot_recall", "A@K": "accuracy_hit"}
    out: Dict[str, Any] = {}
    for key, name in names.items():
        if key in metrics and metrics[key] is not None:
            out[f"{mode}_{name}"] = {k: metrics[key][str(k)] for k in KS if str(k) in metrics[key]}
    out[f"{mode}_mean_recall_list"] = result["per_predicate"]["mR"]
    return out


def _gather_predictions(local: Dict[int, Any]) -> Dict[int, Any]:
    if get_world_size() == 1:
        return local
    parts: Optional[List[Any]] = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(local, parts, dst=0)
    merged: Dict[int, Any] = {}
    for part in parts or []:
        merged.update(part)
    return merged


def _write_json(obj: Any, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1)


def _visual_entry(dataset, index: int, groundtruth: BoxList) -> Dict[str, Any]:
    """One image's line of visual_info.json (its ``prediction`` position is filled in when writing)."""
    return {"img_file": dataset.filenames[index], "image_index": int(index),
            "groundtruth": groundtruth.convert("xyxy").bbox.tolist(),
            "labels": [dataset.ind_to_classes[i] for i in groundtruth.get_field("labels").tolist()]}


def relation_inference(cfg, model: torch.nn.Module, data_loader: Any, dataset_name: str, device: torch.device,
                       output_folder: Optional[str] = None, logger: Optional[logging.Logger] = None
                       ) -> Dict[str, Any]:
    """Run the relation model over ``data_loader`` and evaluate it with the benchmark's protocol.

    Returns the evaluator's result on every rank (the same numbers everywhere); the
    validation value the schedulers use is ``result["metrics"]["R@K"]["100"]``.
    """
    logger = logger or logging.getLogger("maskrcnn_benchmark.inference")
    dataset = data_loader.dataset
    train_counts = torch.as_tensor(get_dataset_statistics(cfg)["fg_matrix"]).sum(dim=(0, 1)).tolist()
    evaluator = build_relation_evaluator(cfg, dataset, train_predicate_counts=train_counts)
    save_predictions = bool(cfg.TEST.SAVE_PREDICTIONS) and output_folder is not None
    kept: Dict[int, Any] = {}  # image index -> (compact prediction, visual_info entry)

    def on_batch(image_ids: Sequence[int], outputs: Sequence[BoxList]) -> None:
        for index, prediction in zip(image_ids, outputs):
            groundtruth = dataset.get_groundtruth(index, evaluation=True)
            prediction = prediction.resize(groundtruth.size)
            evaluator.add(groundtruth, prediction, image_id=index)
            if save_predictions:
                kept[int(index)] = (compact_prediction(prediction, cfg.TEST.SAVE_PREDICTIONS_TOP_REL),
                                    _visual_entry(dataset, index, groundtruth))

    logger.info("Evaluating %s on %s (%d images)", evaluator.mode, dataset_name, len(dataset))
    run_inference(model, data_loader, device, on_batch, desc=f"test {dataset_name}", logger=logger)
    evaluator.all_reduce()
    if save_predictions:
        kept = _gather_predictions(kept)

    result = evaluator.result() if is_main_process() else None
    result = broadcast_from_main(result)
    if is_main_process():
        for line in evaluator.log_lines():
            logger.info(line)
        if output_folder:
            os.makedirs(output_folder, exist_ok=True)
            evaluator.write_json(os.path.join(output_folder, "metrics.json"))
            _write_json(result_dict_from_metrics(result), os.path.join(output_folder, "result_dict.json"))
            if save_predictions:
                order = sorted(kept)
                with atomic_path(os.path.join(output_folder, "predictions.pth")) as tmp:
                    torch.save([kept[i][0] for i in order], tmp)
                visual_info = [dict(kept[i][1], prediction=position) for position, i in enumerate(order)]
                _write_json(visual_info, os.path.join(output_folder, "visual_info.json"))
            logger.info("Wrote the evaluation of %s to %s", dataset_name, output_folder)
    return result
