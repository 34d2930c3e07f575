"""Writing the VG150 files: roidb h5, dictionary json, image_data json, plus generator json files.

The roidb is written twice: ``VG-SGG-with-attri.h5`` with the annotated predicates
(the benchmark's protocol) and ``VG-SGG-with-attri-truth.h5``, the same layout,
boxes, pairs and order with the true predicate of each relation (``with_true_predicates``).

Layouts and dtypes follow the real ``VG-SGG-with-attri.h5``. Boxes are stored as
(cx, cy, w, h) integers chosen so that the benchmark's decode (x1 = trunc(cx - w/2),
x2 = x1 + w, then ``/ scale * max(width, height)``) returns the drawn pixel boxes.
HDF5 modification times are not recorded, so equal inputs give byte-identical files.
"""
import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Sequence

import h5py
import numpy as np

from ..visual_genome import BOX_SCALE, decode_center_boxes
from .world import SyntheticWorld, class_attributes

ROIDB_FILE = "VG-SGG-with-attri.h5"
TRUTH_ROIDB_FILE = "VG-SGG-with-attri-truth.h5"
DICT_FILE = "VG-SGG-dicts-with-attri.json"
IMAGE_DATA_FILE = "image_data.json"
IMAGE_DIR = "VG_100K"
ANNOTATIONS_FILE = "synthetic_vg_annotations.json"
MAX_ATTRIBUTES = 10
SPLIT_CODES = {"train": 0, "val": 0, "test": 2}


@dataclass(frozen=True)
class SceneAnnotation:
    """Ground truth of one image.

    ``boxes``: (n, 4) pixel (x1, y1, x2, y2), the object covering columns x1..x2-1;
    ``labels``: (n,) object ids; ``relations``: (r, 3) rows (subject index, object
    index, annotated predicate id); ``relation_types``: (r,) true predicate id of each
    relation, that of the rule that generated it (a fine child for a fine type, the coarse
    predicate for a coarse type), before coarse annotation.
    """

    image_id: int
    split: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    relations: np.ndarray
    relation_types: np.ndarray


def with_true_predicates(scene: SceneAnnotation) -> SceneAnnotation:
    """The scene with each relation's annotated predicate replaced by its true one (``relation_types``)."""
    relations = scene.relations.copy()
    relations[:, 2] = scene.relation_types
    return replace(scene, relations=relations)


def encode_boxes(boxes: np.ndarray, long_sides: np.ndarray, scale: int) -> np.ndarray:
    """Pixel (x1, y1, x2, y2) -> int32 (cx, cy, w, h) at ``scale`` that decodes back with trunc(cx - w/2)."""
    corners = np.round(boxes * (scale / long_sides[:, None])).astype(np.int64)
    size = np.maximum(corners[:, 2:] - corners[:, :2], 1)
    centre = corners[:, :2] + (size + 1) // 2
    return np.concatenate([centre, size], axis=1).astype(np.int32)


def first_last_ranges(counts: np.ndarray) -> np.ndarray:
    """Inclusive global (first, last) index per image from per-image counts, -1 where the count is 0."""
    last = np.cumsum(counts) - 1
    first = last - counts + 1
    empty = counts == 0
    return np.stack([np.where(empty, -1, first), np.where(empty, -1, last)]).astype(np.int32)


def attribute_names(world: SyntheticWorld) -> List[str]:
    """The real VG attribute names used to describe the classes, alphabetical."""
    return sorted({name for cls in world.object_classes for name in class_attributes(cls)})


def write_roidb(path: str, world: SyntheticWorld, scenes: Sequence[SceneAnnotation]) -> None:
    """Write a ``VG-SGG-with-attri.h5``-format roidb for ``scenes`` in order, with their ``relations``' predicates."""
    attribute_ids = {name: index + 1 for index, name in enumerate(attribute_names(world))}
    box_counts = np.array([len(scene.labels) for scene in scenes])
    rel_counts = np.array([len(scene.relations) for scene in scenes])
    box_offsets = np.concatenate([[0], np.cumsum(box_counts)[:-1]])
    boxes = np.concatenate([scene.boxes for scene in scenes]).astype(np.float64)
    long_sides = np.repeat([max(scene.width, scene.height) for scene in scenes], box_counts).astype(np.float64)
    labels = np.concatenate([scene.labels for scene in scenes]).astype(np.int64)
    relations = np.concatenate([scene.relations for scene in scenes]).astype(np.int64)
    relations[:, :2] += np.repeat(box_offsets, rel_counts)[:, None]
    attributes = np.zeros((len(labels), MAX_ATTRIBUTES), dtype=np.int64)
    for row, label in enumerate(labels):
        ids = [attribute_ids[name] for name in class_attributes(world.object_classes[label - 1])]
        attributes[row, :len(ids)] = ids
    box_ranges = first_last_ranges(box_counts)
    rel_ranges = first_last_ranges(rel_counts)
    datasets: Dict[str, np.ndarray] = {
        "split": np.array([SPLIT_CODES[scene.split] for scene in scenes], dtype=np.int32),
        "img_to_first_box": box_ranges[0],
        "img_to_last_box": box_ranges[1],
        "img_to_first_rel": rel_ranges[0],
        "img_to_last_rel": rel_ranges[1],
        "labels": labels[:, None],
        "boxes_1024": encode_boxes(boxes, long_sides, BOX_SCALE),
        "boxes_512": encode_boxes(boxes, long_sides, 512),
        "active_object_mask": np.ones((len(labels), 1), dtype=bool),
        "relationships": relations[:, :2].astype(np.int32),
        "predicates": relations[:, 2:3],
        "attributes": attributes,
    }
    decoded = decode_center_boxes(datasets["boxes_1024"]) / BOX_SCALE * long_sides[:, None]
    if not np.array_equal(decoded, boxes):
        raise RuntimeError("boxes_1024 does not decode back to the drawn boxes; check image_long_side")
    with h5py.File(path, "w") as roidb:
        for name, values in datasets.items():
            roidb.create_dataset(name, data=values, track_times=False)


def index_maps(names: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """name -> 1-based index and string index -> name, for alphabetical ``names``."""
    return {"to_idx": {name: index + 1 for index, name in enumerate(names)},
            "from_idx": {str(index + 1): name for index, name in enumerate(names)}}


def write_dicts(path: str, world: SyntheticWorld, scenes: Sequence[SceneAnnotation]) -> None:
    """Write ``VG-SGG-dicts-with-attri.json``: index maps and counts over all splits."""
    objects = index_maps(world.object_names)
    predicates = index_maps(world.predicates)
    attributes = index_maps(attribute_names(world))
    object_count = Counter(world.object_names[label - 1] for scene in scenes for label in scene.labels)
    predicate_count = Counter(world.predicates[rel[2] - 1] for scene in scenes for rel in scene.relations)
    attribute_count = Counter(name for scene in scenes for label in scene.labels
                              for name in class_attributes(world.object_classes[label - 1]))
    content = {
        "label_to_idx": objects["to_idx"],
        "idx_to_label": objects["from_idx"],
        "predicate_to_idx": predicates["to_idx"],
        "idx_to_predicate": predicates["from_idx"],
        "attribute_to_idx": attributes["to_idx"],
        "idx_to_attribute": attributes["from_idx"],
        "object_count": {name: object_count[name] for name in world.object_names},
        "predicate_count": {name: predicate_count[name] for name in world.predicates},
        "attribute_count": {name: attribute_count[name] for name in attributes["to_idx"]},
    }
    write_json(path, content)


def write_image_data(path: str, scenes: Sequence[SceneAnnotation]) -> None:
    """Write ``image_data.json``: one entry per h5 row, same order."""
    write_json(path, [{"image_id": scene.image_id, "width": scene.width, "height": scene.height,
                       "url": None, "coco_id": None, "flickr_id": None} for scene in scenes])


def write_annotations(path: str, scenes: Sequence[SceneAnnotation]) -> None:
    """Write per-image ground truth, including the true (generating) predicate of every relation."""
    write_json(path, [{"image_id": scene.image_id, "split": scene.split,
                       "width": scene.width, "height": scene.height,
                       "boxes": scene.boxes.tolist(), "labels": scene.labels.tolist(),
                       "relations": scene.relations.tolist(),
                       "relation_types": scene.relation_types.tolist()} for scene in scenes])


def write_json(path: str, content: Any) -> None:
    """Write JSON deterministically (fixed key order as given)."""
    with open(path, "w") as handle:
        json.dump(content, handle)
