"""Scene sampling and the ``make_synthetic_vg`` entry point.

Sampling happens in two steps. A dataset plan fixes, per image, its split and
the relation types it shows: within each split (train, val, test) the type counts
are apportioned to Zipf weights (every type at least once when the split has
enough relation slots) and shuffled over the slots, and for each fine type
``round(coarse_prob * n)`` of its n relations, chosen at random, are annotated as
the coarse parent (at least one keeps its fine label unless ``coarse_prob`` is 1);
coarse types (genuine coarse and coarse-only) always carry their true, coarse label.
This is random assignment without replacement: each relation is coarse with
probability ~``coarse_prob``, yet the long tail and the split contents are stable
even on small sets. Then every image is drawn from its own random stream.
"""
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .config import SyntheticWorldConfig, coordinate_step
from .layout import Box, fit_pair, place_distractor, sample_cells, sample_image_size
from .render import render_scene, save_jpeg
from .report import INFO_FILE, build_report
from .world import SyntheticWorld, build_world
from .writer import (
    ANNOTATIONS_FILE,
    DICT_FILE,
    IMAGE_DATA_FILE,
    IMAGE_DIR,
    ROIDB_FILE,
    TRUTH_ROIDB_FILE,
    SceneAnnotation,
    write_annotations,
    write_dicts,
    write_image_data,
    write_json,
    write_roidb,
    with_true_predicates,
)

logger = logging.getLogger(__name__)

SKIPPED_IMAGE_IDS = frozenset({1592, 1722, 4616, 4617})
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class ImagePlan:
    """What one image will show: its id, split, relation types (rule indices) and which are coarse-annotated."""

    image_id: int
    split: str
    rule_indices: Tuple[int, ...]
    coarse_annotated: Tuple[bool, ...]


def image_ids(count: int) -> List[int]:
    """Increasing positive ids, skipping the ids the VG150 loader always drops."""
    ids: List[int] = []
    candidate = 1
    while len(ids) < count:
        if candidate not in SKIPPED_IMAGE_IDS:
            ids.append(candidate)
        candidate += 1
    return ids


def assign_splits(rng: np.random.Generator, num_images: int, test_fraction: float,
                  num_val_fraction: float) -> Tuple[List[str], int]:
    """Split name per image (random test subset; val = the first train images) and num_val_im."""
    num_test = min(int(round(test_fraction * num_images)), num_images - 1)
    splits = np.full(num_images, "train", dtype=object)
    splits[rng.choice(num_images, size=num_test, replace=False)] = "test"
    train_indices = np.flatnonzero(splits == "train")
    num_val_im = min(len(train_indices), max(1, int(round(num_val_fraction * len(train_indices)))))
    splits[train_indices[:num_val_im]] = "val"
    return [str(split) for split in splits], num_val_im


def zipf_weights(num_types: int, steepness: float) -> np.ndarray:
    """Normalised weights 1 / rank**steepness for ranks 1..num_types."""
    weights = 1.0 / np.arange(1, num_types + 1, dtype=np.float64) ** steepness
    return weights / weights.sum()


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``weights`` (largest remainder).

    When ``total`` allows, every type gets at least one, taken from the largest count.
    """
    quotas = total * weights
    counts = np.floor(quotas).astype(np.int64)
    remainders = quotas - counts
    counts[np.argsort(-remainders, kind="stable")[:total - counts.sum()]] += 1
    if total >= len(weights):
        for index in np.flatnonzero(counts == 0):
            counts[np.argmax(counts)] -= 1
            counts[index] += 1
    return counts


def coarse_label_count(num_relations: int, coarse_prob: float) -> int:
    """How many of a fine type's relations get the parent label: round(p * n), keeping one fine if p < 1."""
    if coarse_prob >= 1.0:
        return num_relations
    return max(0, min(int(np.floor(coarse_prob * num_relations + 0.5)), num_relations - 1))


def plan_split_relations(rng: np.random.Generator, world: SyntheticWorld, num_slots: int,
                         config: SyntheticWorldConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Rule index and coarse flag for each of ``num_slots`` relation slots of one split."""
    counts = apportion(num_slots, zipf_weights(len(world.rules), config.tail_steepness))
    rule_indices = rng.permutation(np.repeat(np.arange(len(world.rules)), counts))
    coarse = np.zeros(num_slots, dtype=bool)
    for index, rule in enumerate(world.rules):
        if rule.parent is None:
            continue
        slots = np.flatnonzero(rule_indices == index)
        chosen = rng.choice(slots, size=coarse_label_count(len(slots), config.coarse_prob), replace=False)
        coarse[chosen] = True
    return rule_indices, coarse


def plan_dataset(rng: np.random.Generator, world: SyntheticWorld, config: SyntheticWorldConfig,
                 num_images: int) -> Tuple[List[ImagePlan], int]:
    """The plan of every image and the number of val images."""
    splits, num_val_im = assign_splits(rng, num_images, config.test_fraction, config.num_val_fraction)
    rels_per_image = rng.integers(config.min_rels, config.max_rels + 1, size=num_images)
    rules_of_image: List[Tuple[int, ...]] = [()] * num_images
    coarse_of_image: List[Tuple[bool, ...]] = [()] * num_images
    for split in ("train", "val", "test"):
        members = [index for index in range(num_images) if splits[index] == split]
        num_slots = int(rels_per_image[members].sum())
        rule_indices, coarse = plan_split_relations(rng, world, num_slots, config)
        start = 0
        for index in members:
            stop = start + int(rels_per_image[index])
            rules_of_image[index] = tuple(int(rule) for rule in rule_indices[start:stop])
            coarse_of_image[index] = tuple(bool(flag) for flag in coarse[start:stop])
            start = stop
    plans = [ImagePlan(image_id, splits[index], rules_of_image[index], coarse_of_image[index])
             for index, image_id in enumerate(image_ids(num_images))]
    return plans, num_val_im


def sample_scene(rng: np.random.Generator, world: SyntheticWorld, config: SyntheticWorldConfig,
                 plan: ImagePlan) -> Tuple[SceneAnnotation, List[int]]:
    """Place the planned relation pairs and some distractors; return the annotation and the paint order."""
    step = coordinate_step(config.image_long_side)
    min_size = max(4, 2 * step)
    width, height = sample_image_size(rng, config.image_long_side, config.aspect_ratios, step)
    num_distractors = int(rng.integers(0, config.max_distractors + 1))
    cells = sample_cells(rng, width, height, len(plan.rule_indices) + num_distractors)
    boxes: List[Box] = []
    labels: List[int] = []
    relations: List[Tuple[int, int, int]] = []
    relation_types: List[int] = []
    paint_order: List[int] = []
    for cell in cells[len(plan.rule_indices):]:
        paint_order.append(len(boxes))
        boxes.append(place_distractor(rng, cell, step, min_size))
        labels.append(int(rng.integers(len(world.object_classes))) + 1)
    for cell, rule_index, coarse in zip(cells, plan.rule_indices, plan.coarse_annotated):
        rule = world.rules[rule_index]
        subject, obj = len(boxes), len(boxes) + 1
        boxes.extend(fit_pair(rng, cell, world.layout_ranges[rule_index], step, min_size))
        labels.append(world.object_id(rule.subjects[rng.integers(len(rule.subjects))]))
        labels.append(world.object_id(rule.objects[rng.integers(len(rule.objects))]))
        paint_order.extend((obj, subject) if rule.layout.subject_in_front else (subject, obj))
        annotated = rule.parent if coarse else rule.predicate
        relations.append((subject, obj, world.predicate_id(annotated)))
        relation_types.append(world.predicate_id(rule.predicate))
    order = rng.permutation(len(boxes))
    new_index = np.argsort(order)
    relation_array = np.array(relations, dtype=np.int64)
    relation_array[:, :2] = new_index[relation_array[:, :2]]
    scene = SceneAnnotation(
        image_id=plan.image_id, split=plan.split, width=width, height=height,
        boxes=np.array(boxes, dtype=np.int64)[order], labels=np.array(labels, dtype=np.int64)[order],
        relations=relation_array, relation_types=np.array(relation_types, dtype=np.int64))
    return scene, [int(new_index[index]) for index in paint_order]


def make_synthetic_vg(out_dir: str, num_images: int, seed: int,
                      config: Optional[SyntheticWorldConfig] = None) -> Dict[str, Any]:
    """Generate a synthetic VG150-format dataset in ``out_dir`` and return its report.

    Writes the four VG150 files (``VG-SGG-with-attri.h5``, ``VG-SGG-dicts-with-attri.json``,
    ``image_data.json``, ``VG_100K/<id>.jpg``), the truth roidb ``VG-SGG-with-attri-truth.h5``
    (the same h5 with every relation's true predicate; the catalog's
    ``synthetic_vg_{val,test}_truth``), ``synthetic_vg_annotations.json`` (per-image ground
    truth with the true predicates) and ``synthetic_vg_info.json`` (the report; schema in
    the ``report`` module). The same seed and config give byte-identical files.
    """
    config = config or SyntheticWorldConfig()
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    config.validate()
    world = build_world(config.num_coarse_only, config.num_genuine_coarse, config.geometry_overlap)
    plan_seed, scenes_seed = np.random.SeedSequence(seed).spawn(2)
    plans, num_val_im = plan_dataset(np.random.default_rng(plan_seed), world, config, num_images)
    image_dir = os.path.join(out_dir, IMAGE_DIR)
    os.makedirs(image_dir, exist_ok=True)
    scenes: List[SceneAnnotation] = []
    for count, (plan, image_seed) in enumerate(zip(plans, scenes_seed.spawn(num_images)), start=1):
        rng = np.random.default_rng(image_seed)
        scene, paint_order = sample_scene(rng, world, config, plan)
        styles = [world.object_classes[label - 1] for label in scene.labels]
        image = render_scene(rng, scene.width, scene.height, [tuple(box) for box in scene.boxes.tolist()],
                             styles, paint_order, config.pixel_noise_std)
        save_jpeg(os.path.join(image_dir, f"{scene.image_id}.jpg"), image, config.jpeg_quality)
        scenes.append(scene)
        if count % PROGRESS_EVERY == 0:
            logger.info("rendered %d / %d images", count, num_images)
    write_roidb(os.path.join(out_dir, ROIDB_FILE), world, scenes)
    write_roidb(os.path.join(out_dir, TRUTH_ROIDB_FILE), world, [with_true_predicates(scene) for scene in scenes])
    write_dicts(os.path.join(out_dir, DICT_FILE), world, scenes)
    write_image_data(os.path.join(out_dir, IMAGE_DATA_FILE), scenes)
    write_annotations(os.path.join(out_dir, ANNOTATIONS_FILE), scenes)
    report = build_report(world, config, seed, scenes, num_val_im)
    write_json(os.path.join(out_dir, INFO_FILE), report)
    logger.info("wrote %d images (%s) to %s", num_images, report["splits"], out_dir)
    return report
