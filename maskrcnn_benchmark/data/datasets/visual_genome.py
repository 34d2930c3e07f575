"""Visual Genome VG150 scene graphs, read exactly as the Scene-Graph-Benchmark reads them.

The files are the ones the benchmark distributes (``VG-SGG-with-attri.h5``,
``VG-SGG-dicts-with-attri.json``, ``image_data.json`` and the ``VG_100K`` image
folder). Module functions and ``VGDataset`` keep the benchmark's names and
signatures so that code written against it works unchanged; the arithmetic
(integer box decoding, the +1 overlap filter, the split construction, the random
handling of repeated relation pairs, the frequency statistics) reproduces the
benchmark's results, which the golden fixtures in ``shared/fixtures/vg_loader``
record. Bad input raises ``VGDataError`` with a message that names the file, key,
image id or box at fault instead of a bare assertion.

All random draws use NumPy's global generator, so ``np.random.seed`` makes them
repeatable and PyTorch's DataLoader seeds them per worker.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np
import torch
import torch.utils.data
from PIL import Image

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.box_convention import pixel_offset

logger = logging.getLogger(__name__)

BOX_SCALE = 1024  # the longer image side in the frame of the h5 ``boxes_1024``
VG150_NUM_IMAGES = 108073  # h5 rows of the real VG150 roidb
SKIPPED_IMAGE_IDS = (1592, 1722, 4616, 4617)  # corrupted images, listed in image_data.json but not in the h5
SPLITS = ("train", "val", "test")

_H5_SPLIT_FLAG = {"train": 0, "val": 0, "test": 2}
_PER_IMAGE_KEYS = ("split", "img_to_first_box", "img_to_last_box", "img_to_first_rel", "img_to_last_rel")
_PER_BOX_KEYS = ("labels", "attributes", f"boxes_{BOX_SCALE}")
_PER_RELATION_KEYS = ("relationships", "predicates")
_DICT_KEYS = ("label_to_idx", "predicate_to_idx", "attribute_to_idx")
_COUNT_KEYS = ("object_count", "predicate_count", "attribute_count")
_BACKGROUND = "__background__"
_MAX_IDS_IN_MESSAGE = 5


class VGDataError(ValueError):
    """The VG150 files are missing, incomplete or inconsistent."""


# ------------------------------------------------------------------ file checks
def _where_to_fix(config_key: str) -> str:
    """The configuration that decides where a dataset file is looked for."""
    return (f"set DATASETS.DATA_DIR, or the {config_key!r} path of the dataset's entry in "
            "maskrcnn_benchmark/config/paths_catalog.py")


def _require_file(path: str, config_key: str) -> None:
    """Raise ``VGDataError`` naming ``path`` and its config key unless it is a file."""
    if not os.path.isfile(path):
        raise VGDataError(f"{os.path.basename(path) or path} not found at {path} ({_where_to_fix(config_key)})")


def _require_dir(path: str, config_key: str) -> None:
    """Raise ``VGDataError`` naming ``path`` and its config key unless it is a folder."""
    if not os.path.isdir(path):
        raise VGDataError(f"image folder not found at {path} ({_where_to_fix(config_key)})")


def _read_json(path: str, config_key: str) -> Any:
    """Parse a JSON file, turning a missing or malformed file into ``VGDataError``."""
    _require_file(path, config_key)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise VGDataError(f"{path} is not valid JSON ({err})") from err
    except RecursionError as err:  # a crafted or corrupted file nested thousands of levels deep
        raise VGDataError(f"{path} is nested too deeply to be a {config_key} JSON file") from err


# ------------------------------------------------------------------- dictionary
def _names_by_index(name_to_idx: Dict[str, int], key: str, dict_file: str) -> List[str]:
    """Names sorted by index; the indices must be consecutive so that position == label id."""
    ordered = sorted(name_to_idx, key=lambda name: name_to_idx[name])
    ids = [name_to_idx[name] for name in ordered]
    if ids and ids != list(range(ids[0], ids[0] + len(ids))):
        raise VGDataError(f"{key} in {dict_file} should map names to consecutive indices, got {ids[:10]}...")
    return ordered


def _read_dictionary(dict_file: str, keys: Sequence[str]) -> Dict[str, Any]:
    """Load the dictionary JSON and check that it has ``keys``."""
    info = _read_json(dict_file, "dict_file")
    missing = [key for key in keys if key not in info]
    if missing:
        raise VGDataError(f"{dict_file} lacks the key(s) {missing}")
    return info


def load_info(dict_file: str, add_bg: bool = True) -> Tuple[List[str], List[str], List[str]]:
    """Class, predicate and attribute names, each list indexed by label id.

    With ``add_bg`` the name ``__background__`` takes index 0 of all three lists
    (151 classes, 51 predicates and 201 attributes on VG150), as the models
    expect label 0 to mean background / no relation.
    """
    info = _read_dictionary(dict_file, _DICT_KEYS)
    tables = []
    for key in _DICT_KEYS:
        name_to_idx = dict(info[key])
        if add_bg:
            name_to_idx[_BACKGROUND] = 0
        tables.append(_names_by_index(name_to_idx, key, dict_file))
    return tables[0], tables[1], tables[2]


def load_label_counts(dict_file: str, add_bg: bool = True) -> Tuple[List[int], List[int], List[int]]:
    """Training-set frequencies of classes, predicates and attributes, aligned with ``load_info``.

    The dictionary file stores them by name (``object_count`` ...); here entry i
    is the count of label id i, with 0 for ``__background__`` when ``add_bg``.
    """
    info = _read_dictionary(dict_file, _DICT_KEYS + _COUNT_KEYS)
    names = load_info(dict_file, add_bg)
    counts = []
    for count_key, table in zip(_COUNT_KEYS, names):
        by_name = info[count_key]
        missing = [name for name in table if name != _BACKGROUND and name not in by_name]
        if missing:
            raise VGDataError(f"{count_key} in {dict_file} has no count for {missing[:_MAX_IDS_IN_MESSAGE]}")
        counts.append([0 if name == _BACKGROUND else int(by_name[name]) for name in table])
    return counts[0], counts[1], counts[2]


# ---------------------------------------------------------------------- images
def _image_entries(image_file: str) -> List[Dict[str, Any]]:
    """The image_data.json entries minus the benchmark's skip list."""
    entries = _read_json(image_file, "image_file")
    if not isinstance(entries, list):
        raise VGDataError(f"{image_file} should hold a list of image records")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"image_id", "width", "height"} <= entry.keys():
            raise VGDataError(f"entry {position} of {image_file} lacks image_id, width or height: {entry!r}")
    return [entry for entry in entries if entry["image_id"] not in SKIPPED_IMAGE_IDS]


def _image_path(img_dir: str, image_id: int) -> str:
    return os.path.join(img_dir, f"{image_id}.jpg")


def _raise_image_count_error(entries: List[Dict[str, Any]], existing: List[bool], expected_count: int,
                       img_dir: str, image_file: str) -> None:
    """Explain why the images found do not line up one-to-one with the h5 rows."""
    if len(entries) != expected_count:
        raise VGDataError(
            f"{image_file} lists {len(entries)} images (after skipping ids {list(SKIPPED_IMAGE_IDS)}) "
            f"but the roidb has {expected_count} image rows; image i of the h5 must be entry i of the list")
    missing = [entry["image_id"] for entry, found in zip(entries, existing) if not found]
    raise VGDataError(
        f"{len(missing)} image(s) listed in {image_file} are missing from {img_dir}: image ids "
        f"{missing[:_MAX_IDS_IN_MESSAGE]}{' ...' if len(missing) > _MAX_IDS_IN_MESSAGE else ''} "
        f"({_where_to_fix('img_dir')})")


def load_image_filenames(img_dir: str, image_file: str, check_img_file: bool = True,
                         expected_count: Optional[int] = None) -> Tuple[List[str], List[Dict[str, Any]]]:
    """Image paths and image_data.json records, in h5 row order.

    As in the benchmark, the corrupted ids in ``SKIPPED_IMAGE_IDS`` are dropped
    and, with ``check_img_file``, so are entries whose ``<image_id>.jpg`` is not
    in ``img_dir``. ``expected_count`` is the number of h5 rows (the benchmark
    hard-codes the 108,073 of VG150): when given, the list that remains must have
    exactly that length, otherwise ``VGDataError`` names the counts or the first
    missing image ids.
    """
    _require_dir(img_dir, "img_dir")
    entries = _image_entries(image_file)
    paths = [_image_path(img_dir, entry["image_id"]) for entry in entries]
    existing = [os.path.isfile(path) for path in paths] if check_img_file else [True] * len(paths)
    kept = [i for i, found in enumerate(existing) if found]
    if expected_count is not None and len(kept) != expected_count:
        _raise_image_count_error(entries, existing, expected_count, img_dir, image_file)
    return [paths[i] for i in kept], [entries[i] for i in kept]


# ---------------------------------------------------------------------- roidb
def _open_roidb(roidb_file: str, keys: Sequence[str]) -> h5py.File:
    """Open the roidb for reading after checking that it exists, is HDF5 and has ``keys``."""
    _require_file(roidb_file, "roidb_file")
    try:
        h5 = h5py.File(roidb_file, "r")
    except OSError as err:
        raise VGDataError(f"cannot open {roidb_file} as an HDF5 file ({err})") from err
    missing = [key for key in keys if key not in h5]
    if missing:
        h5.close()
        raise VGDataError(f"{roidb_file} lacks the dataset(s) {missing}")
    return h5


def _read_roidb(roidb_file: str) -> Dict[str, np.ndarray]:
    """Every h5 dataset ``load_graphs`` needs, as NumPy arrays (first column of the (N, 1) ones)."""
    keys = _PER_IMAGE_KEYS + _PER_BOX_KEYS + _PER_RELATION_KEYS
    with _open_roidb(roidb_file, keys) as h5:
        roidb = {key: h5[key][()] for key in keys}
    for key in ("labels", "predicates"):
        roidb[key] = roidb[key].reshape(len(roidb[key]), -1)[:, 0]
    _check_roidb_lengths(roidb, roidb_file)
    return roidb


def _check_roidb_lengths(roidb: Dict[str, np.ndarray], roidb_file: str) -> None:
    """Per-image, per-box and per-relation datasets must agree on their lengths."""
    for group in (_PER_IMAGE_KEYS, _PER_BOX_KEYS, _PER_RELATION_KEYS):
        lengths = {key: len(roidb[key]) for key in group}
        if len(set(lengths.values())) != 1:
            raise VGDataError(f"datasets of {roidb_file} that should have the same length do not: {lengths}")


def count_roidb_images(roidb_file: str) -> int:
    """Number of image rows of the roidb (108,073 on VG150)."""
    with _open_roidb(roidb_file, ("split",)) as h5:
        return len(h5["split"])


def _describe_row(row: int, image_ids: Optional[Sequence[int]]) -> str:
    """Name an h5 image row by its image id where known."""
    if image_ids is not None and row < len(image_ids):
        return f"image id {image_ids[row]} (h5 row {row})"
    return f"h5 row {row}"


def _locate_box(box: int, roidb: Dict[str, np.ndarray], image_ids: Optional[Sequence[int]]) -> str:
    """Name global box ``box`` as "box k of <image>"."""
    first, last = roidb["img_to_first_box"], roidb["img_to_last_box"]
    rows = np.flatnonzero((first >= 0) & (first <= box) & (box <= last))
    if rows.size == 0:
        return f"global box {box} (in no image's box range)"
    row = int(rows[0])
    return f"box {box - int(first[row])} of {_describe_row(row, image_ids)}"


def _decode_boxes(roidb: Dict[str, np.ndarray], roidb_file: str,
                  image_ids: Optional[Sequence[int]]) -> np.ndarray:
    """The h5's scale-1024 boxes as integer (x1, y1, x2, y2), after checking they are valid."""
    key = f"boxes_{BOX_SCALE}"
    boxes = roidb[key]
    bad = np.flatnonzero((boxes[:, :2] < 0).any(axis=1) | (boxes[:, 2:] <= 0).any(axis=1))
    if bad.size:
        box = int(bad[0])
        raise VGDataError(
            f"{_locate_box(box, roidb, image_ids)} in {key} of {roidb_file} is (cx, cy, w, h) = "
            f"{boxes[box].tolist()}; boxes need cx, cy >= 0 and w, h > 0 ({bad.size} bad box(es) in all)")
    return decode_center_boxes(boxes)


def decode_center_boxes(boxes: np.ndarray) -> np.ndarray:
    """Integer (cx, cy, w, h) -> integer (x1, y1, x2, y2) with the benchmark's truncation.

    x1 = cx - w / 2 truncated toward zero (the benchmark writes the float result back
    into its integer array), then x2 = x1 + w; same for y.
    """
    corner = (boxes[:, :2] - boxes[:, 2:] / 2).astype(boxes.dtype)
    return np.concatenate((corner, corner + boxes[:, 2:]), axis=1)


def _select_rows(roidb: Dict[str, np.ndarray], split: str, num_im: int, num_val_im: int,
                 filter_empty_rels: bool) -> np.ndarray:
    """h5 rows of ``split``: val is the first ``num_val_im`` train rows, train the rest."""
    mask = roidb["split"] == _H5_SPLIT_FLAG[split]
    mask &= roidb["img_to_first_box"] >= 0
    if filter_empty_rels:
        mask &= roidb["img_to_first_rel"] >= 0
    rows = np.flatnonzero(mask)
    if num_im > -1:
        rows = rows[:num_im]
    if num_val_im > 0 and split == "val":
        rows = rows[:num_val_im]
    elif num_val_im > 0 and split == "train":
        rows = rows[num_val_im:]
    return rows


def _check_ranges(first: np.ndarray, last: np.ndarray, total: int, what: str, rows: np.ndarray,
                  roidb_file: str, image_ids: Optional[Sequence[int]]) -> None:
    """An image's inclusive [first, last] range of ``what`` rows (box, relation) must lie in [0, total)."""
    used = first >= 0
    bad = np.flatnonzero(used & ((last < first) | (last >= total)))
    if bad.size:
        i = int(bad[0])
        raise VGDataError(f"{_describe_row(int(rows[i]), image_ids)} has the {what} rows "
                          f"[{first[i]}, {last[i]}] in {roidb_file}, not a range inside [0, {total})")


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n), without a Python loop."""
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total) - offsets


def _image_relations(roidb: Dict[str, np.ndarray], rows: np.ndarray, roidb_file: str,
                     image_ids: Optional[Sequence[int]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relations of the images ``rows``: (global rows, owning position in ``rows``, local (R, 3))."""
    first_box, first_rel = roidb["img_to_first_box"][rows], roidb["img_to_first_rel"][rows]
    last_box, last_rel = roidb["img_to_last_box"][rows], roidb["img_to_last_rel"][rows]
    _check_ranges(first_box, last_box, len(roidb["labels"]), "box", rows, roidb_file, image_ids)
    _check_ranges(first_rel, last_rel, len(roidb["predicates"]), "relation", rows, roidb_file, image_ids)
    num_rels = np.where(first_rel >= 0, last_rel - first_rel + 1, 0)
    rel_rows = _concat_ranges(first_rel, num_rels)
    owner = np.repeat(np.arange(len(rows)), num_rels)
    local = roidb["relationships"][rel_rows].astype(np.int64) - first_box[owner, None]
    num_boxes = (last_box - first_box + 1)[owner, None]
    bad = np.flatnonzero(((local < 0) | (local >= num_boxes)).any(axis=1))
    if bad.size:
        r = int(bad[0])
        raise VGDataError(
            f"relation {r - int(np.searchsorted(owner, owner[r]))} of "
            f"{_describe_row(int(rows[owner[r]]), image_ids)} in {roidb_file} links global boxes "
            f"{roidb['relationships'][rel_rows[r]].tolist()}, outside the image's boxes "
            f"[{first_box[owner[r]]}, {last_box[owner[r]]}]")
    triples = np.column_stack((local, roidb["predicates"][rel_rows].astype(np.int64)))
    return rel_rows, owner, triples


def _intersection_area(boxes1: np.ndarray, boxes2: np.ndarray, offset: float) -> np.ndarray:
    """Intersection areas of broadcastable xyxy box arrays; ``offset`` is the pixel offset (1 = legacy)."""
    lt = np.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = np.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt + offset).clip(min=0)
    return wh[..., 0] * wh[..., 1]


def _legacy_boxes_intersect(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Row-wise: do the boxes overlap under the +1 pixel convention (legacy IoU > 0)?"""
    return _intersection_area(boxes1, boxes2, pixel_offset(True)) > 0


def load_graphs(roidb_file: str, split: str, num_im: int, num_val_im: int, filter_empty_rels: bool,
                filter_non_overlap: bool, image_ids: Optional[Sequence[int]] = None
                ) -> Tuple[np.ndarray, List[np.ndarray], List[np.ndarray], List[np.ndarray], List[np.ndarray]]:
    """Boxes, labels, attributes and relations of the images of ``split``.

    Returns ``(split_mask, boxes, gt_classes, gt_attributes, relationships)``:
    ``split_mask`` is a bool vector over all h5 rows marking the images kept, in
    order; the lists hold, per kept image, integer xyxy boxes at scale 1024 (N, 4),
    class ids (N,), attribute ids (N, 10) and relations (R, 3) of (subject box,
    object box, predicate) with box indices local to the image.

    Images without boxes are never kept; ``filter_empty_rels`` also drops images
    without relations. ``num_im`` (-1 = all) truncates the split's list before val
    (the first ``num_val_im`` train images) is carved out of train. With
    ``filter_non_overlap`` (train only) relations between boxes that do not
    overlap under the +1 convention are dropped, and so is an image left without
    relations. ``image_ids`` (h5 row -> image id) only serves error messages.
    """
    if split not in SPLITS:
        raise VGDataError(f"split should be one of {SPLITS}, got {split!r}")
    if filter_non_overlap and split != "train":
        raise VGDataError(f"filter_non_overlap applies to the train split only, got split {split!r}")
    roidb = _read_roidb(roidb_file)
    boxes = _decode_boxes(roidb, roidb_file, image_ids)
    rows = _select_rows(roidb, split, num_im, num_val_im, filter_empty_rels)
    rel_rows, owner, triples = _image_relations(roidb, rows, roidb_file, image_ids)
    if filter_non_overlap:
        pairs = roidb["relationships"][rel_rows]
        overlapping = _legacy_boxes_intersect(boxes[pairs[:, 0]], boxes[pairs[:, 1]])
        owner, triples = owner[overlapping], triples[overlapping]
    num_rels = np.bincount(owner, minlength=len(rows))
    keep = num_rels > 0 if filter_non_overlap else np.ones(len(rows), dtype=bool)
    split_mask = np.zeros(len(roidb["split"]), dtype=bool)
    split_mask[rows[keep]] = True
    starts = roidb["img_to_first_box"][rows[keep]]
    stops = roidb["img_to_last_box"][rows[keep]] + 1
    relations = np.split(triples, np.cumsum(num_rels)[:-1]) if len(rows) else []
    return (split_mask,
            [boxes[a:b] for a, b in zip(starts, stops)],
            [roidb["labels"][a:b] for a, b in zip(starts, stops)],
            [roidb["attributes"][a:b] for a, b in zip(starts, stops)],
            [rel for rel, kept in zip(relations, keep) if kept])


# ------------------------------------------------------------------ statistics
def bbox_overlaps(boxes1: np.ndarray, boxes2: np.ndarray, to_move: float = 1) -> np.ndarray:
    """Pairwise intersection areas (N, M) of xyxy boxes; ``to_move`` is the pixel offset (1 = legacy)."""
    return _intersection_area(boxes1[:, None], boxes2[None], to_move)


def box_filter(boxes: np.ndarray, must_overlap: bool = False) -> np.ndarray:
    """Ordered pairs (i, j), i != j, of candidate relations among ``boxes``, as a (P, 2) array.

    With ``must_overlap`` only pairs whose boxes intersect (no +1 offset) count,
    unless no pair does, in which case every pair counts.
    """
    boxes = boxes.astype(np.float64)
    all_pairs = ~np.eye(len(boxes), dtype=bool)
    candidates = all_pairs
    if must_overlap:
        overlapping = (bbox_overlaps(boxes, boxes, to_move=0) > 0) & all_pairs
        if overlapping.any():
            candidates = overlapping
    return np.column_stack(np.nonzero(candidates))


def get_VG_statistics(img_dir: str, roidb_file: str, dict_file: str, image_file: str,
                      must_overlap: bool = True, num_val_im: int = 5000) -> Tuple[np.ndarray, np.ndarray]:
    """Raw predicate counts of the train split: ``fg_matrix`` (C, C, P) and ``bg_matrix`` (C, C).

    The train split is built as the benchmark builds it for this purpose
    (filter_empty_rels and filter_non_overlap on, duplicates kept, so every
    relation row counts). ``fg_matrix[s, o, p]`` counts relations with subject
    class s, object class o and predicate p; ``bg_matrix[s, o]`` counts the box
    pairs of ``box_filter(boxes, must_overlap)`` at scale 1024. ``num_val_im``
    is the val size carved out of train (the benchmark always uses 5000).
    """
    train = VGDataset(split="train", img_dir=img_dir, roidb_file=roidb_file, dict_file=dict_file,
                      image_file=image_file, num_val_im=num_val_im, filter_duplicate_rels=False)
    num_classes, num_predicates = len(train.ind_to_classes), len(train.ind_to_predicates)
    fg_matrix = np.zeros((num_classes, num_classes, num_predicates), dtype=np.int64)
    bg_matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for classes, relations, boxes in zip(train.gt_classes, train.relationships, train.gt_boxes):
        np.add.at(fg_matrix, (classes[relations[:, 0]], classes[relations[:, 1]], relations[:, 2]), 1)
        pairs = box_filter(boxes, must_overlap=must_overlap)
        np.add.at(bg_matrix, (classes[pairs[:, 0]], classes[pairs[:, 1]]), 1)
    return fg_matrix, bg_matrix


def frequency_tables(fg_matrix: np.ndarray, bg_matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The benchmark's frequency prior from raw counts: ``(fg_matrix, pred_dist)``.

    Background gets ``bg_matrix + 1`` in predicate channel 0, and
    ``pred_dist = log(fg / sum_p fg + 1e-3)`` as float32. The inputs are not modified.
    """
    fg_matrix = fg_matrix.copy()
    fg_matrix[:, :, 0] = bg_matrix + 1
    pred_dist = np.log(fg_matrix / fg_matrix.sum(2)[:, :, None] + 1e-3).astype(np.float32)
    return fg_matrix, pred_dist


# ------------------------------------------------------------ per-image targets
def _boxes_in_pixels(boxes_1024: np.ndarray, width: int, height: int, flip: bool) -> np.ndarray:
    """Scale-1024 boxes to pixels of the original image, optionally mirrored as ``x -> w - x``."""
    boxes = boxes_1024.reshape(-1, 4) / BOX_SCALE * max(width, height)
    if flip:
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    return boxes


def sample_one_predicate_per_pair(relations: np.ndarray) -> np.ndarray:
    """Keep one row per (subject, object) pair, its predicate drawn uniformly from the pair's rows.

    Pairs keep the order of their first occurrence; a predicate repeated in
    several rows is proportionally more likely, as with the benchmark's
    ``np.random.choice`` over the pair's list.
    """
    keys = relations[:, 0].astype(np.int64) * (int(relations[:, 1].max(initial=0)) + 1) + relations[:, 1]
    _, first_rows, group = np.unique(keys, return_index=True, return_inverse=True)
    if len(first_rows) == len(keys):
        return relations
    group = np.argsort(np.argsort(first_rows))[group.reshape(-1)]
    counts = np.bincount(group)
    rows_by_group = np.argsort(group, kind="stable")
    chosen = rows_by_group[np.cumsum(counts) - counts + np.random.randint(0, counts)]
    return relations[chosen]


def relation_map(relations: np.ndarray, num_boxes: int) -> torch.Tensor:
    """Dense (N, N) int64 map of predicates; 0 = no relation.

    When a pair occurs in several rows, each later row overwrites the value with
    probability 0.5 (the benchmark's rule), so the result is the last row that
    won its coin flip, the first row always winning.
    """
    rel_map = torch.zeros((num_boxes, num_boxes), dtype=torch.int64)
    if len(relations) == 0:
        return rel_map
    keys = relations[:, 0].astype(np.int64) * num_boxes + relations[:, 1]
    _, first_rows = np.unique(keys, return_index=True)
    winners = np.arange(len(keys))
    if len(first_rows) < len(keys):
        wins = np.random.random(len(keys)) > 0.5
        wins[first_rows] = True
        winners = np.flatnonzero(wins)[::-1]
        _, last = np.unique(keys[winners], return_index=True)
        winners = winners[last]
    chosen = torch.as_tensor(relations[winners].astype(np.int64))
    rel_map[chosen[:, 0], chosen[:, 1]] = chosen[:, 2]
    return rel_map


def all_predicates_map(relations: np.ndarray, num_boxes: int, num_predicates: int) -> torch.Tensor:
    """Dense (N, N, P) uint8 map: 1 where predicate p is annotated for (subject, object), over all rows."""
    rel_map = torch.zeros((num_boxes, num_boxes, num_predicates), dtype=torch.uint8)
    if len(relations):
        rows = torch.as_tensor(relations.astype(np.int64))
        rel_map[rows[:, 0], rows[:, 1], rows[:, 2]] = 1
    return rel_map


class VGDataset(torch.utils.data.Dataset):
    """VG150 images with their scene graphs, item ``(PIL image, BoxList target, index)``.

    Parameters and attributes are the benchmark's. ``split`` is train, val or
    test (val = the first ``num_val_im`` train images); ``filter_duplicate_rels``
    and ``filter_non_overlap`` only take effect for train. Image sizes come from
    ``image_data.json``; a decoded image of another size is logged as a warning.

    Deliberate deviations from the benchmark:

    * ``flip_aug``: the benchmark passes its coin flip into ``evaluation`` by
      position, so the image is mirrored but the boxes are not. Here a train item
      that draws the flip gets the mirrored image and mirrored boxes (the
      training target of ``get_groundtruth(index, flip_img=True)``). The usual
      train-time flip comes from the transforms, not from this flag.
    * ``get_statistics`` builds the train split with this dataset's
      ``num_val_im`` instead of a hard-coded 5000 (the same on VG150).
    * Bad files raise ``VGDataError`` naming what is wrong; the 108,073-image
      check is replaced by "one image per h5 row", which is that check on VG150.

    Addition: ``keep_all_predicates`` (train only, off by default) adds the triplet
    field ``relation_all`` (:func:`all_predicates_map`, before the random pick), for
    losses that use every GT predicate of a pair; it draws no random numbers.
    """

    def __init__(self, split: str, img_dir: str, roidb_file: str, dict_file: str, image_file: str,
                 transforms: Any = None, filter_empty_rels: bool = True, num_im: int = -1,
                 num_val_im: int = 5000, filter_duplicate_rels: bool = True, filter_non_overlap: bool = True,
                 flip_aug: bool = False, keep_all_predicates: bool = False) -> None:
        if split not in SPLITS:
            raise VGDataError(f"split should be one of {SPLITS}, got {split!r}")
        self.split = split
        self.img_dir = img_dir
        self.roidb_file = roidb_file
        self.dict_file = dict_file
        self.image_file = image_file
        self.transforms = transforms
        self.num_val_im = num_val_im
        self.flip_aug = flip_aug
        self.keep_all_predicates = keep_all_predicates and split == "train"
        self.filter_non_overlap = filter_non_overlap and split == "train"
        self.filter_duplicate_rels = filter_duplicate_rels and split == "train"

        self.ind_to_classes, self.ind_to_predicates, self.ind_to_attributes = load_info(dict_file)
        self.categories = dict(enumerate(self.ind_to_classes))

        filenames, img_info = load_image_filenames(img_dir, image_file,
                                                   expected_count=count_roidb_images(roidb_file))
        self.split_mask, self.gt_boxes, self.gt_classes, self.gt_attributes, self.relationships = load_graphs(
            roidb_file, split, num_im, num_val_im=num_val_im, filter_empty_rels=filter_empty_rels,
            filter_non_overlap=self.filter_non_overlap, image_ids=[info["image_id"] for info in img_info])
        rows = np.flatnonzero(self.split_mask)
        self.filenames = [filenames[i] for i in rows]
        self.img_info = [img_info[i] for i in rows]

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, index: int) -> Tuple[Any, BoxList, int]:
        img = self._load_image(index)
        flip_img = self.flip_aug and self.split == "train" and np.random.random() > 0.5
        target = self.get_groundtruth(index, flip_img=flip_img)
        if flip_img:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        return img, target, index

    def _load_image(self, index: int) -> Image.Image:
        """Decode image ``index`` as RGB, warning when its size disagrees with image_data.json."""
        info = self.img_info[index]
        try:
            img = Image.open(self.filenames[index]).convert("RGB")
        except OSError as err:
            raise VGDataError(f"cannot read image id {info['image_id']} at {self.filenames[index]} ({err})") from err
        if img.size != (info["width"], info["height"]):
            logger.warning("image id %s: decoded size %s differs from %s in %s; boxes use the latter",
                           info["image_id"], img.size, (info["width"], info["height"]), self.image_file)
        return img

    def get_img_info(self, index: int) -> Dict[str, Any]:
        """The image_data.json record of image ``index`` (image_id, width, height, ...)."""
        return self.img_info[index]

    def get_groundtruth(self, index: int, evaluation: bool = False, flip_img: bool = False) -> BoxList:
        """Target of image ``index``: pixel boxes with ``labels``, ``attributes`` and ``relation``.

        ``relation`` is the dense (N, N) predicate map (a triplet field). For train,
        repeated (subject, object) pairs keep one random predicate first. With
        ``evaluation`` all boxes are kept (clipped) and ``relation_tuple`` (R, 3)
        holds the relation rows; otherwise boxes left empty by clipping are removed.
        ``flip_img`` mirrors the boxes as ``x -> w - x`` before clipping.
        """
        info = self.get_img_info(index)
        width, height = info["width"], info["height"]
        boxes = _boxes_in_pixels(self.gt_boxes[index], width, height, flip_img)
        target = BoxList(boxes, (width, height), "xyxy")
        target.add_field("labels", torch.tensor(self.gt_classes[index], dtype=torch.int64))
        target.add_field("attributes", torch.tensor(self.gt_attributes[index], dtype=torch.int64))
        relations = self.relationships[index]
        if self.keep_all_predicates:
            target.add_field("relation_all", all_predicates_map(relations, len(target), len(self.ind_to_predicates)),
                             is_triplet=True)
        if self.filter_duplicate_rels:
            relations = sample_one_predicate_per_pair(relations)
        target.add_field("relation", relation_map(relations, len(target)), is_triplet=True)
        if not evaluation:
            return target.clip_to_image(remove_empty=True)
        target = target.clip_to_image(remove_empty=False)
        target.add_field("relation_tuple", torch.tensor(relations, dtype=torch.int64).reshape(-1, 3))
        return target

    def get_statistics(self) -> Dict[str, Any]:
        """Frequency prior of the train split: fg_matrix, pred_dist and the three name lists."""
        fg_matrix, bg_matrix = get_VG_statistics(self.img_dir, self.roidb_file, self.dict_file, self.image_file,
                                                 must_overlap=True, num_val_im=self.num_val_im)
        fg_matrix, pred_dist = frequency_tables(fg_matrix, bg_matrix)
        return {
            "fg_matrix": torch.from_numpy(fg_matrix),
            "pred_dist": torch.from_numpy(pred_dist),
            "obj_classes": self.ind_to_classes,
            "rel_classes": self.ind_to_predicates,
            "att_classes": self.ind_to_attributes,
        }
