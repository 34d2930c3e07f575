"""Planning and the ``make_synthetic_psg`` entry point.

As for the synthetic VG set, a plan first fixes each image's split and relation types
(per split, the 56 types' counts apportioned to Zipf weights in ``POPULARITY_ORDER``,
every type at least once when the split has enough slots, shuffled over the slots);
then every image is drawn from its own random stream. Same seed and config, same files.
"""
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..synthetic_vg.generate import apportion, zipf_weights
from .config import SyntheticPSGConfig
from .scene import sample_scene
from .world import POPULARITY_ORDER, relation_types, styles
from .writer import INFO_FILE, SPLITS, ImageFiles, psg_record, write_image_files, write_json, write_psg_files

logger = logging.getLogger(__name__)

FIRST_IMAGE_ID = 100000
FIRST_COCO_ID = 500000


def assign_splits(rng: np.random.Generator, num_images: int, config: SyntheticPSGConfig) -> List[str]:
    """Split name per image: a random val and test subset, train the rest (at least one image)."""
    num_val = int(round(config.val_fraction * num_images))
    num_test = min(int(round(config.test_fraction * num_images)), num_images - 1 - num_val)
    splits = np.full(num_images, "train", dtype=object)
    order = rng.permutation(num_images)
    splits[order[:num_val]] = "val"
    splits[order[num_val:num_val + max(num_test, 0)]] = "test"
    return [str(split) for split in splits]


def plan_types(rng: np.random.Generator, splits: List[str], config: SyntheticPSGConfig) -> List[Tuple[int, ...]]:
    """Predicates (relation types) shown by each image."""
    rels_per_image = rng.integers(config.min_rels, config.max_rels + 1, size=len(splits))
    planned: List[Tuple[int, ...]] = [()] * len(splits)
    for split in SPLITS:
        members = [i for i, name in enumerate(splits) if name == split]
        weights = zipf_weights(len(POPULARITY_ORDER), config.tail_steepness)
        counts = apportion(int(rels_per_image[members].sum()), weights)
        slots = rng.permutation(np.repeat(np.array(POPULARITY_ORDER), counts))
        start = 0
        for i in members:
            planned[i] = tuple(int(p) for p in slots[start:start + rels_per_image[i]])
            start += int(rels_per_image[i])
    return planned


def make_synthetic_psg(out_dir: str, num_images: int, seed: int,
                       config: Optional[SyntheticPSGConfig] = None) -> Dict[str, Any]:
    """Write a synthetic PSG-format set into ``out_dir`` (layout in ``writer``) and return its report."""
    config = config or SyntheticPSGConfig()
    if num_images < 1 or seed < 0:
        raise ValueError(f"need num_images >= 1 and seed >= 0, got {num_images}, {seed}")
    config.validate()
    types, looks = relation_types(), styles()
    plan_seed, scenes_seed = np.random.SeedSequence(seed).spawn(2)
    plan_rng = np.random.default_rng(plan_seed)
    splits = assign_splits(plan_rng, num_images, config)
    planned = plan_types(plan_rng, splits, config)
    files, records = [], []
    for index, image_seed in enumerate(scenes_seed.spawn(num_images)):
        image = ImageFiles(str(FIRST_IMAGE_ID + index), str(FIRST_COCO_ID + index), splits[index])
        scene, pixels, id_map = sample_scene(np.random.default_rng(image_seed), [types[p] for p in planned[index]],
                                             looks, config)
        write_image_files(out_dir, image, pixels, id_map, config.jpeg_quality)
        files.append(image)
        records.append(psg_record(image, scene))
    write_psg_files(out_dir, files, records)
    report = {"seed": seed, "num_images": num_images,
              "splits": {split: splits.count(split) for split in SPLITS},
              "num_relations": sum(len(record["relations"]) for record in records),
              "num_segments": sum(len(record["segments_info"]) for record in records)}
    write_json(os.path.join(out_dir, INFO_FILE), report)
    logger.info("wrote %d PSG-format images (%s) to %s", num_images, report["splits"], out_dir)
    return report
