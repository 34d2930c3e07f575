"""One image's ground truth and prediction as plain numpy arrays, with the per-mode overrides."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from maskrcnn_benchmark.config.modes import RELATION_MODES as MODES
from maskrcnn_benchmark.structures.bounding_box import BoxList



@dataclass
class ImageInputs:
    """What the evaluator reads from one image (boxes xyxy in original-image pixels).

    ``pred_*`` are the boxes the relations refer to; ``rel_pairs`` index them and
    ``rel_scores`` (M, 1 + num_predicates) has the background in column 0.
    """

    gt_boxes: np.ndarray  # (G, 4) float32
    gt_labels: np.ndarray  # (G,) int64
    gt_rels: np.ndarray  # (R, 3) int64: subject, object, predicate
    pred_boxes: np.ndarray  # (P, 4) float32
    pred_labels: np.ndarray  # (P,) int64
    pred_scores: np.ndarray  # (P,) float32
    rel_pairs: np.ndarray  # (M, 2) int64
    rel_scores: np.ndarray  # (M, 1 + num_predicates) float32


def _numpy(tensor, dtype) -> np.ndarray:
    array = tensor.numpy(force=True) if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
    return array.astype(dtype, copy=False)


def inputs_from_boxlists(groundtruth: BoxList, prediction: BoxList) -> ImageInputs:
    """Read the benchmark's fields: GT ``labels``/``relation_tuple``; prediction
    ``rel_pair_idxs``/``pred_rel_scores``/``pred_labels``/``pred_scores``.

    A prediction at another image size is resized to the GT size first, as the
    benchmark does before evaluating.
    """
    if prediction.size != groundtruth.size:
        prediction = prediction.resize(groundtruth.size)
    return ImageInputs(
        gt_boxes=_numpy(groundtruth.convert("xyxy").bbox, np.float32),
        gt_labels=_numpy(groundtruth.get_field("labels"), np.int64),
        gt_rels=_numpy(groundtruth.get_field("relation_tuple"), np.int64).reshape(-1, 3),
        pred_boxes=_numpy(prediction.convert("xyxy").bbox, np.float32),
        pred_labels=_numpy(prediction.get_field("pred_labels"), np.int64),
        pred_scores=_numpy(prediction.get_field("pred_scores"), np.float32),
        rel_pairs=_numpy(prediction.get_field("rel_pair_idxs"), np.int64).reshape(-1, 2),
        rel_scores=_numpy(prediction.get_field("pred_rel_scores"), np.float32),
    )


def apply_mode(inputs: ImageInputs, mode: str) -> ImageInputs:
    """The objects the relation metrics use: in PredCls the GT boxes and labels with score 1.

    SGCls and SGDet use the predicted objects unchanged.
    """
    if mode not in MODES:
        raise ValueError(f"mode should be one of {MODES}, got {mode!r}")
    if mode != "predcls":
        return inputs
    return ImageInputs(
        gt_boxes=inputs.gt_boxes, gt_labels=inputs.gt_labels, gt_rels=inputs.gt_rels,
        pred_boxes=inputs.gt_boxes, pred_labels=inputs.gt_labels,
        pred_scores=np.ones(len(inputs.gt_labels), dtype=np.float32),
        rel_pairs=inputs.rel_pairs, rel_scores=inputs.rel_scores,
    )
