"""Reading SGG evaluation fixtures (format version 1: ``<mode>.npz`` + ``<mode>.json``).

The format is the framework-free exchange format of
``shared/fixtures/sgg_eval/FORMAT.md``: per-image arrays flattened with
offsets, relation rows in post-processor order. It lets predictions from any
codebase be evaluated here.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Iterator, Tuple

import numpy as np
import torch

from maskrcnn_benchmark.structures.bounding_box import BoxList

_SLICES = {
    "gt_box_offsets": ("gt_boxes", "gt_labels"),
    "gt_rel_offsets": ("gt_rels",),
    "pred_box_offsets": ("pred_boxes", "pred_labels", "pred_scores"),
    "pair_offsets": ("rel_pairs", "rel_scores"),
}


def load_fixture(npz_path: str) -> Dict[str, np.ndarray]:
    """All arrays of a fixture ``.npz``, read once."""
    with np.load(npz_path) as f:
        arrays = {name: f[name] for name in f.files}
    missing = [name for name in ("image_wh", *_SLICES, *sum(_SLICES.values(), ())) if name not in arrays]
    if missing:
        raise ValueError(f"{npz_path} is not an SGG evaluation fixture: missing arrays {missing}")
    return arrays


def fixture_mode(npz_path: str) -> str:
    """The ``mode`` recorded in the ``.json`` next to the ``.npz``."""
    meta_path = os.path.splitext(npz_path)[0] + ".json"
    with open(meta_path) as f:
        return json.load(f)["mode"]


def image_arrays(fixture: Dict[str, np.ndarray], index: int) -> Dict[str, np.ndarray]:
    """Image ``index``'s slices of the per-image arrays."""
    out = {}
    for offsets, names in _SLICES.items():
        start, end = fixture[offsets][index], fixture[offsets][index + 1]
        for name in names:
            out[name] = fixture[name][start:end]
    return out


def fixture_boxlists(fixture: Dict[str, np.ndarray], index: int) -> Tuple[BoxList, BoxList]:
    """(groundtruth, prediction) of image ``index`` with the benchmark's field names."""
    a = image_arrays(fixture, index)
    size = tuple(int(x) for x in fixture["image_wh"][index])
    gt = BoxList(torch.from_numpy(a["gt_boxes"]), size, "xyxy")
    gt.add_field("labels", torch.from_numpy(a["gt_labels"]))
    gt.add_field("relation_tuple", torch.from_numpy(a["gt_rels"]))
    pred = BoxList(torch.from_numpy(a["pred_boxes"]), size, "xyxy")
    pred.add_field("pred_labels", torch.from_numpy(a["pred_labels"]))
    pred.add_field("pred_scores", torch.from_numpy(a["pred_scores"]))
    pred.add_field("rel_pair_idxs", torch.from_numpy(a["rel_pairs"]))
    pred.add_field("pred_rel_scores", torch.from_numpy(a["rel_scores"]))
    return gt, pred


def iter_fixture(fixture: Dict[str, np.ndarray]) -> Iterator[Tuple[int, BoxList, BoxList]]:
    """(image index, groundtruth, prediction) for every image of the fixture."""
    for index in range(len(fixture["image_wh"])):
        yield (index, *fixture_boxlists(fixture, index))
