"""Panoptic Scene Graph (PSG) data: ``psg.json`` and the COCO panoptic PNGs, read as OpenPSG reads them.

``PSGDataset`` has ``VGDataset``'s public shape (``get_groundtruth``, ``get_img_info``,
``get_statistics``, ``ind_to_classes``, ``ind_to_predicates``), so the relation tools
train and evaluate on it unchanged. OpenPSG's rules: boxes are ``annotations[k].bbox``
(XYXY, things and stuff); relations index the segment list; predicates are shifted to
1..56 (0 = no relation) and object classes to 1..133 (0 = background); the test split
is ``test_image_ids`` and train is every other record; images without relations are
dropped; in training each (subject, object) pair keeps one random predicate, at test the
distinct triplets are kept. Masks come from the PNG (segment id = R + 256 G + 65536 B).

Boxes are turned into the codebase's inclusive "+1" convention (x2 - 1, y2 - 1), since
``psg.json``'s x2, y2 are exclusive. Bad input raises ``PSGDataError`` naming the file,
the image id and the field. Random draws use NumPy's global generator, as ``VGDataset``.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data
from PIL import Image

from maskrcnn_benchmark.structures.bounding_box import BoxList

from .visual_genome import box_filter, frequency_tables, relation_map, sample_one_predicate_per_pair

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TOP_KEYS = ("data", "thing_classes", "stuff_classes", "predicate_classes", "test_image_ids")
RECORD_KEYS = ("file_name", "height", "width", "image_id", "pan_seg_file_name", "segments_info",
               "annotations", "relations")
_BACKGROUND = "__background__"


class PSGDataError(ValueError):
    """The PSG files are missing, incomplete or inconsistent."""


def rgb_to_segment_id(rgb: np.ndarray) -> np.ndarray:
    """Panoptic id map (H, W) int64 of an RGB uint8 (H, W, 3) PNG: R + 256 G + 65536 B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def segment_id_to_rgb(id_map: np.ndarray) -> np.ndarray:
    """Inverse of ``rgb_to_segment_id``: (H, W) ids -> (H, W, 3) uint8."""
    id_map = id_map.astype(np.int64)
    return np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)


def load_psg_json(ann_file: str) -> Dict[str, Any]:
    """Parse ``psg.json`` and check its five top-level keys."""
    if not os.path.isfile(ann_file):
        raise PSGDataError(f"PSG annotation file not found at {ann_file} (set DATASETS.DATA_DIR, or the "
                           "'ann_file' path of the psg entry in maskrcnn_benchmark/config/paths_catalog.py)")
    try:
        with open(ann_file) as f:
            psg = json.load(f)
    except json.JSONDecodeError as err:
        raise PSGDataError(f"{ann_file} is not valid JSON ({err})") from err
    missing = [key for key in TOP_KEYS if key not in psg]
    if missing:
        raise PSGDataError(f"{ann_file} lacks the top-level key(s) {missing}")
    return psg


def check_record(record: Dict[str, Any], ann_file: str, num_classes: int, num_predicates: int) -> None:
    """Raise ``PSGDataError`` naming file, image id and field for a record OpenPSG could not use."""
    image_id = record.get("image_id", "?")
    where = f"{ann_file}, image_id {image_id}"
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise PSGDataError(f"{where}: record lacks the field(s) {missing}")
    segments, annotations = record["segments_info"], record["annotations"]
    if len(segments) != len(annotations):
        raise PSGDataError(f"{where}: segments_info has {len(segments)} entries but annotations {len(annotations)}")
    width, height = record["width"], record["height"]
    for k, (segment, annotation) in enumerate(zip(segments, annotations)):
        x1, y1, x2, y2 = annotation["bbox"]
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise PSGDataError(f"{where}: annotations[{k}].bbox {annotation['bbox']} is not an XYXY box inside "
                               f"the {width}x{height} image")
        if not 0 <= segment["category_id"] < num_classes:
            raise PSGDataError(f"{where}: segments_info[{k}].category_id {segment['category_id']} is not in "
                               f"0..{num_classes - 1}")
        if annotation["category_id"] != segment["category_id"]:
            raise PSGDataError(f"{where}: annotations[{k}].category_id {annotation['category_id']} differs from "
                               f"segments_info[{k}].category_id {segment['category_id']}")
    for r, relation in enumerate(record["relations"]):
        subject, obj, predicate = relation
        if not (0 <= subject < len(segments) and 0 <= obj < len(segments)):
            raise PSGDataError(f"{where}: relations[{r}] = {relation} indexes a segment outside "
                               f"0..{len(segments) - 1}")
        if not 0 <= predicate < num_predicates:
            raise PSGDataError(f"{where}: relations[{r}] = {relation} has a predicate outside 0..{num_predicates - 1}")


def select_records(psg: Dict[str, Any], split: str, filter_empty_rels: bool) -> List[Dict[str, Any]]:
    """Records of ``split``: test (and val, as in OpenPSG's configs) = ``test_image_ids``, train = the rest."""
    if split not in SPLITS:
        raise PSGDataError(f"split should be one of {SPLITS}, got {split!r}")
    test_ids = set(psg["test_image_ids"])
    want_test = split != "train"
    records = [record for record in psg["data"] if (record["image_id"] in test_ids) == want_test]
    if filter_empty_rels:
        records = [record for record in records if record["relations"]]
    return records


def distinct_rows(relations: np.ndarray) -> np.ndarray:
    """Rows of ``relations`` without exact repeats, in the order of their first occurrence."""
    _, first = np.unique(relations, axis=0, return_index=True)
    return relations[np.sort(first)]


def decode_masks(png_path: str, segment_ids: Sequence[int], where: str) -> np.ndarray:
    """(N, H, W) bool masks of ``segment_ids`` (in that order) from a panoptic PNG."""
    try:
        with Image.open(png_path) as png:
            id_map = rgb_to_segment_id(np.asarray(png.convert("RGB")))
    except OSError as err:
        raise PSGDataError(f"{where}: cannot read the panoptic PNG {png_path} ({err})") from err
    masks = id_map[None] == np.asarray(segment_ids, dtype=np.int64).reshape(-1, 1, 1)
    absent = [k for k, mask in enumerate(masks) if not mask.any()]
    if absent:
        raise PSGDataError(f"{where}: segments_info[{absent[0]}].id {segment_ids[absent[0]]} does not occur in "
                           f"{png_path} ({len(absent)} absent segment(s))")
    return masks


class PSGDataset(torch.utils.data.Dataset):
    """PSG images with their panoptic scene graphs, item ``(PIL image, BoxList target, index)``.

    Args:
        split: train, val or test (val and test are both ``test_image_ids``, as in OpenPSG).
        img_dir: the COCO root that ``file_name`` and ``pan_seg_file_name`` are relative to.
        ann_file: ``psg.json`` (or a file of the same schema).
        filter_empty_rels: drop images without relations (OpenPSG always does).
        filter_duplicate_rels: in train, keep one random predicate per (subject, object) pair.
        flip_aug: mirror a train item's image, boxes and masks with probability 0.5.
    """

    def __init__(self, split: str, img_dir: str, ann_file: str, transforms: Any = None,
                 filter_empty_rels: bool = True, filter_duplicate_rels: bool = True, flip_aug: bool = False) -> None:
        self.split = split
        self.img_dir = img_dir
        self.ann_file = ann_file
        self.transforms = transforms
        self.flip_aug = flip_aug
        self.filter_duplicate_rels = filter_duplicate_rels and split == "train"
        psg = load_psg_json(ann_file)
        classes = list(psg["thing_classes"]) + list(psg["stuff_classes"])
        self.ind_to_classes = [_BACKGROUND] + classes
        self.ind_to_predicates = [_BACKGROUND] + list(psg["predicate_classes"])
        self.ind_to_attributes: List[str] = []
        self.categories = dict(enumerate(self.ind_to_classes))
        self.records = select_records(psg, split, filter_empty_rels)
        self.filenames = [os.path.join(img_dir, record["file_name"]) for record in self.records]
        for record in self.records:
            check_record(record, ann_file, len(classes), len(psg["predicate_classes"]))
        self.gt_boxes = [self._boxes(record) for record in self.records]
        self.gt_classes = [np.array([s["category_id"] + 1 for s in record["segments_info"]], dtype=np.int64)
                           for record in self.records]
        self.relationships = [self._relations(record) for record in self.records]

    def _boxes(self, record: Dict[str, Any]) -> np.ndarray:
        """(N, 4) float32 boxes in the inclusive convention: exclusive x2, y2 minus one."""
        boxes = np.array([a["bbox"] for a in record["annotations"]], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] -= 1
        return boxes

    def _relations(self, record: Dict[str, Any]) -> np.ndarray:
        """(R, 3) int64 relations with 1-based predicates; distinct rows outside train."""
        relations = np.array(record["relations"], dtype=np.int64).reshape(-1, 3)
        relations[:, 2] += 1
        return relations if self.split == "train" else distinct_rows(relations)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Tuple[Any, BoxList, int]:
        img = self._load_image(index)
        flip_img = self.flip_aug and self.split == "train" and np.random.random() > 0.5
        target = self.get_groundtruth(index, flip_img=flip_img)
        if flip_img:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        return img, target, index

    def _where(self, index: int) -> str:
        return f"{self.ann_file}, image_id {self.records[index]['image_id']}"

    def _load_image(self, index: int) -> Image.Image:
        """Decode image ``index`` as RGB, warning when its size disagrees with the record."""
        record, path = self.records[index], self.filenames[index]
        try:
            img = Image.open(path).convert("RGB")
        except OSError as err:
            raise PSGDataError(f"{self._where(index)}: cannot read file_name {path} ({err})") from err
        if img.size != (record["width"], record["height"]):
            logger.warning("%s: decoded size %s differs from the record's %s", self._where(index), img.size,
                           (record["width"], record["height"]))
        return img

    def get_img_info(self, index: int) -> Dict[str, Any]:
        """image_id, coco_image_id, width, height, file_name and pan_seg_file_name of image ``index``."""
        record = self.records[index]
        return {key: record[key] for key in ("image_id", "coco_image_id", "width", "height", "file_name",
                                             "pan_seg_file_name") if key in record}

    def get_masks(self, index: int) -> np.ndarray:
        """(N, H, W) bool segment masks of image ``index``, in ``segments_info`` order."""
        record = self.records[index]
        return decode_masks(os.path.join(self.img_dir, record["pan_seg_file_name"]),
                            [segment["id"] for segment in record["segments_info"]], self._where(index))

    def get_groundtruth(self, index: int, evaluation: bool = False, flip_img: bool = False) -> BoxList:
        """Target of image ``index``: boxes with ``labels`` and the dense ``relation`` map.

        Train keeps one random predicate per pair first. With ``evaluation`` the
        target also carries ``relation_tuple`` (R, 3) and ``masks`` (N, H, W) bool;
        otherwise boxes left empty by clipping are removed. ``flip_img`` mirrors the
        boxes (and masks) as ``x -> w - 1 - x``.
        """
        info = self.get_img_info(index)
        width, height = info["width"], info["height"]
        boxes = self.gt_boxes[index].copy()
        if flip_img:
            boxes[:, [0, 2]] = width - 1 - boxes[:, [2, 0]]
        target = BoxList(torch.from_numpy(boxes), (width, height), "xyxy")
        target.add_field("labels", torch.from_numpy(self.gt_classes[index]))
        relations = self.relationships[index]
        if self.filter_duplicate_rels:
            relations = sample_one_predicate_per_pair(relations)
        target.add_field("relation", relation_map(relations, len(target)), is_triplet=True)
        if not evaluation:
            return target.clip_to_image(remove_empty=True)
        target = target.clip_to_image(remove_empty=False)
        target.add_field("relation_tuple", torch.as_tensor(relations, dtype=torch.int64).reshape(-1, 3))
        masks = self.get_masks(index)
        target.add_field("masks", torch.from_numpy(masks[:, :, ::-1].copy() if flip_img else masks))
        return target

    def get_statistics(self) -> Dict[str, Any]:
        """Frequency prior of the train split (every relation row, duplicates kept), as ``VGDataset``'s."""
        train = self if self.split == "train" else PSGDataset("train", self.img_dir, self.ann_file)
        num_classes, num_predicates = len(train.ind_to_classes), len(train.ind_to_predicates)
        fg_matrix = np.zeros((num_classes, num_classes, num_predicates), dtype=np.int64)
        bg_matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        for classes, relations, boxes in zip(train.gt_classes, train.relationships, train.gt_boxes):
            np.add.at(fg_matrix, (classes[relations[:, 0]], classes[relations[:, 1]], relations[:, 2]), 1)
            pairs = box_filter(boxes, must_overlap=True)
            np.add.at(bg_matrix, (classes[pairs[:, 0]], classes[pairs[:, 1]]), 1)
        fg_matrix, pred_dist = frequency_tables(fg_matrix, bg_matrix)
        return {
            "fg_matrix": torch.from_numpy(fg_matrix),
            "pred_dist": torch.from_numpy(pred_dist),
            "obj_classes": self.ind_to_classes,
            "rel_classes": self.ind_to_predicates,
            "att_classes": self.ind_to_attributes,
        }
