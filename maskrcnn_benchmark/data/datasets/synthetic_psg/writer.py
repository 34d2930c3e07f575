"""The files of a synthetic PSG set: records in the ``psg.json`` schema and the CE7454 files.

Layout (OpenPSG's ``data/`` folder): ``coco/{train2017,val2017}/<coco id>.jpg``,
``coco/panoptic_{train2017,val2017}/<coco id>.png``, ``psg/psg.json``,
``psg/psg_cls_basic.json`` (CE7454 schema, test labels hidden) and ``psg/psg_cls_gt.txt``
(the grader's ground truth of the test images, one line each, in file order).
"""
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np
from PIL import Image

from ..psg import segment_id_to_rgb
from ..psg_vocabulary import NUM_POSITIONAL, PREDICATES, STUFF_CLASSES, THING_CLASSES
from .scene import PSGScene
from .world import is_thing

PSG_FILE = os.path.join("psg", "psg.json")
CLS_FILE = os.path.join("psg", "psg_cls_basic.json")
CLS_GT_FILE = os.path.join("psg", "psg_cls_gt.txt")
INFO_FILE = os.path.join("psg", "synthetic_psg_info.json")
COCO_DIR = "coco"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageFiles:
    """Ids and relative paths of one image; val and test images live in COCO's val2017 folders."""

    image_id: str
    coco_image_id: str
    split: str

    @property
    def folder(self) -> str:
        return "train2017" if self.split == "train" else "val2017"

    @property
    def file_name(self) -> str:
        return f"{self.folder}/{int(self.coco_image_id):012d}.jpg"

    @property
    def pan_seg_file_name(self) -> str:
        return f"panoptic_{self.folder}/{int(self.coco_image_id):012d}.png"


def write_image_files(out_dir: str, files: ImageFiles, image: np.ndarray, id_map: np.ndarray, quality: int) -> None:
    """The JPEG and the lossless RGB panoptic PNG of one image."""
    for relative in (files.file_name, files.pan_seg_file_name):
        os.makedirs(os.path.dirname(os.path.join(out_dir, COCO_DIR, relative)), exist_ok=True)
    Image.fromarray(image).save(os.path.join(out_dir, COCO_DIR, files.file_name), format="JPEG", quality=quality)
    Image.fromarray(segment_id_to_rgb(id_map)).save(os.path.join(out_dir, COCO_DIR, files.pan_seg_file_name),
                                                     format="PNG")


def psg_record(files: ImageFiles, scene: PSGScene) -> Dict[str, Any]:
    """One ``data`` entry of ``psg.json``."""
    segments = [{"id": int(segment_id), "category_id": int(category), "iscrowd": 0,
                 "isthing": int(is_thing(int(category))), "area": int(area)}
                for segment_id, category, area in zip(scene.segment_ids, scene.categories, scene.areas)]
    annotations = [{"bbox": [float(v) for v in box], "bbox_mode": 0, "category_id": int(category)}
                   for box, category in zip(scene.boxes, scene.categories)]
    return {"file_name": files.file_name, "height": scene.height, "width": scene.width,
            "image_id": files.image_id, "coco_image_id": files.coco_image_id,
            "pan_seg_file_name": files.pan_seg_file_name, "segments_info": segments,
            "annotations": annotations, "relations": scene.relations.tolist()}


def cls_labels(relations: Sequence[Sequence[int]]) -> List[int]:
    """CE7454 labels of an image: its distinct non-positional predicates, ascending."""
    return sorted({int(p) for _, _, p in relations if p >= NUM_POSITIONAL})


def write_json(path: str, content: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(content, f)


def write_psg_files(out_dir: str, files: Sequence[ImageFiles], records: Sequence[Dict[str, Any]]) -> None:
    """``psg.json`` (test_image_ids = CE7454 val + test), ``psg_cls_basic.json`` and ``psg_cls_gt.txt``."""
    ids = {split: [f.image_id for f in files if f.split == split] for split in SPLITS}
    write_json(os.path.join(out_dir, PSG_FILE), {
        "data": list(records), "thing_classes": list(THING_CLASSES), "stuff_classes": list(STUFF_CLASSES),
        "predicate_classes": list(PREDICATES), "test_image_ids": ids["val"] + ids["test"]})
    cls_data = [{"image_id": f.image_id, "file_name": f.file_name,
                 "relations": [] if f.split == "test" else cls_labels(record["relations"])}
                for f, record in zip(files, records)]
    write_json(os.path.join(out_dir, CLS_FILE), {
        "data": cls_data, "predicate_classes": list(PREDICATES), "train_image_ids": ids["train"],
        "val_image_ids": ids["val"], "test_image_ids": ids["test"]})
    with open(os.path.join(out_dir, CLS_GT_FILE), "w") as f:
        for image, record in zip(files, records):
            if image.split == "test":
                f.write(" ".join(str(p) for p in cls_labels(record["relations"])) + "\n")
