"""One synthetic PSG image: placement, rendering, the panoptic id map and the visible segments.

Objects are drawn with the synthetic VG renderer; the same shape masks, painted in the
same order with each segment's id, give the panoptic PNG, so a segment's mask is
exactly its visible pixels. Boxes are the tight exclusive boxes of those pixels
([min x, min y, max x + 1, max y + 1]), as in ``psg.json``. A segment hidden entirely
by the ones painted after it is dropped with its relations.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ..synthetic_vg.layout import Box, fit_pair, place_distractor, sample_cells, sample_image_size
from ..synthetic_vg.render import render_scene, shape_mask
from ..synthetic_vg.world import ObjectClass
from .config import SyntheticPSGConfig
from .world import BACKGROUND_STUFF, OBJECT_ONLY_THINGS, SUBJECT_THINGS, PSGRelationType, category_id, is_positional

MAX_SEGMENT_ID = 256 ** 3 - 1
COORDINATE_STEP = 2
MIN_BOX_SIZE = 6
DISTRACTOR_CLASSES = SUBJECT_THINGS + OBJECT_ONLY_THINGS


@dataclass(frozen=True)
class PSGScene:
    """The annotation of one image: segments in record order and relations indexing them (0-based predicates)."""

    width: int
    height: int
    categories: np.ndarray  # (N,) 0-based category ids
    segment_ids: np.ndarray  # (N,) unique nonzero panoptic ids
    boxes: np.ndarray  # (N, 4) exclusive XYXY pixels
    areas: np.ndarray  # (N,) visible pixel counts
    relations: np.ndarray  # (R, 3) subject index, object index, predicate


def background_regions(rng: np.random.Generator, width: int, height: int) -> List[Tuple[int, Box]]:
    """One or two large stuff regions (category, box): a bottom band and maybe a top band."""
    names = rng.choice(len(BACKGROUND_STUFF), size=int(rng.integers(1, 3)), replace=False)
    bottom_top = int(round(height * rng.uniform(0.45, 0.7)))
    regions = [(category_id(BACKGROUND_STUFF[names[0]]), (0, bottom_top, width, height))]
    if len(names) > 1:
        top_bottom = int(round(height * rng.uniform(0.2, 0.4)))
        regions.append((category_id(BACKGROUND_STUFF[names[1]]), (0, 0, width, top_bottom)))
    return regions


def unique_segment_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct ids in 1..256**3 - 1, so that all three PNG channels carry information."""
    ids: List[int] = []
    while len(ids) < count:
        candidate = int(rng.integers(1, MAX_SEGMENT_ID + 1))
        if candidate not in ids:
            ids.append(candidate)
    return np.array(ids, dtype=np.int64)


def paint_ids(width: int, height: int, boxes: Sequence[Box], shapes: Sequence[str], ids: np.ndarray,
              paint_order: Sequence[int]) -> np.ndarray:
    """(H, W) panoptic id map: each object's shape mask painted with its id, in paint order (0 = void)."""
    id_map = np.zeros((height, width), dtype=np.int64)
    for index in paint_order:
        x1, y1, x2, y2 = boxes[index]
        region = id_map[y1:y2, x1:x2]
        region[shape_mask(shapes[index], y2 - y1, x2 - x1)] = ids[index]
    return id_map


def tight_box(mask: np.ndarray) -> Tuple[int, int, int, int]:
    """Exclusive XYXY box of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def annotate_relations(rng: np.random.Generator, pairs: Sequence[Tuple[int, int]],
                       types: Sequence[PSGRelationType], config: SyntheticPSGConfig) -> List[Tuple[int, int, int]]:
    """Triplets of the planned pairs, some pairs also with their positional predicate, maybe one repeat."""
    relations = []
    for (subject, obj), kind in zip(pairs, types):
        relations.append((subject, obj, kind.predicate))
        if not is_positional(kind.predicate) and rng.random() < config.second_predicate_prob:
            relations.append((subject, obj, kind.positional))
    if rng.random() < config.duplicate_prob:
        relations.append(relations[int(rng.integers(len(relations)))])
    return relations


def sample_scene(rng: np.random.Generator, types: Sequence[PSGRelationType], looks: dict,
                 config: SyntheticPSGConfig) -> Tuple[PSGScene, np.ndarray, np.ndarray]:
    """Draw one image showing ``types``: its annotation, RGB image and panoptic id map."""
    width, height = sample_image_size(rng, config.image_long_side, config.aspect_ratios, COORDINATE_STEP)
    placed: List[Tuple[int, Box]] = background_regions(rng, width, height)
    paint_order = list(range(len(placed)))
    num_distractors = int(rng.integers(0, config.max_distractors + 1))
    cells = sample_cells(rng, width, height, len(types) + num_distractors)
    for cell in cells[len(types):]:
        paint_order.append(len(placed))
        category = category_id(DISTRACTOR_CLASSES[int(rng.integers(len(DISTRACTOR_CLASSES)))])
        placed.append((category, place_distractor(rng, cell, COORDINATE_STEP, MIN_BOX_SIZE)))
    pairs = []
    for cell, kind in zip(cells, types):
        subject_box, object_box = fit_pair(rng, cell, kind.layout.ranges(), COORDINATE_STEP, MIN_BOX_SIZE)
        subject, obj = len(placed), len(placed) + 1
        placed.extend([(kind.subject, subject_box), (kind.object, object_box)])
        paint_order.extend((obj, subject) if kind.layout.subject_in_front else (subject, obj))
        pairs.append((subject, obj))
    categories = np.array([category for category, _ in placed], dtype=np.int64)
    boxes = [box for _, box in placed]
    styles: List[ObjectClass] = [looks[int(category)] for category in categories]
    image = render_scene(rng, width, height, boxes, styles, paint_order, config.pixel_noise_std)
    ids = unique_segment_ids(rng, len(placed))
    id_map = paint_ids(width, height, boxes, [style.shape for style in styles], ids, paint_order)
    relations = annotate_relations(rng, pairs, types, config)
    return visible_scene(rng, width, height, categories, ids, id_map, relations), image, id_map


def visible_scene(rng: np.random.Generator, width: int, height: int, categories: np.ndarray, ids: np.ndarray,
                  id_map: np.ndarray, relations: List[Tuple[int, int, int]]) -> PSGScene:
    """Keep the segments with visible pixels, in random order, and the relations between them."""
    areas = np.array([np.count_nonzero(id_map == segment_id) for segment_id in ids], dtype=np.int64)
    kept = rng.permutation(np.flatnonzero(areas > 0))
    new_index = np.full(len(ids), -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    rel = np.array(relations, dtype=np.int64).reshape(-1, 3)
    rel[:, :2] = new_index[rel[:, :2]]
    rel = rel[(rel[:, :2] >= 0).all(axis=1)]
    boxes = np.array([tight_box(id_map == ids[k]) for k in kept], dtype=np.int64).reshape(-1, 4)
    return PSGScene(width=width, height=height, categories=categories[kept], segment_ids=ids[kept], boxes=boxes,
                    areas=areas[kept], relations=rel)
