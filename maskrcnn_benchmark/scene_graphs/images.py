"""Images of a folder or glob as a dataset, with optional boxes for SGCls / PredCls.

Each image is known by its *name*: its path relative to the folder (or to the
glob's fixed leading folder), with ``/`` separators. Names key the boxes file and
the output files. An image that cannot be decoded, or whose boxes are unusable,
becomes a failed item instead of an exception, so one bad file does not stop a run.

Boxes file (``--boxes boxes.json``), one entry per image name::

    {"kitchen/0001.jpg": {"boxes": [[x1, y1, x2, y2], ...],
                          "labels": ["cup", "table", ...]},
     ...}

Boxes are in pixels of the original image, ``xyxy``. ``labels`` (class names of the
model's vocabulary, or their integer ids) are required for PredCls and ignored by
SGCls. An image without an entry fails in those modes.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from PIL import Image

from maskrcnn_benchmark.structures import BoxList

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageEntry:
    """One input image: its file and its name (the key of outputs and boxes)."""

    path: str
    name: str


@dataclass(frozen=True)
class GivenBoxes:
    """The boxes of one image from the boxes file; ``labels`` None when the file gives none."""

    boxes: torch.Tensor
    labels: Optional[torch.Tensor]


def _glob_root(pattern: str) -> str:
    """The folder of ``pattern`` before its first wildcard."""
    parts = pattern.split(os.sep)
    first_magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return os.sep.join(parts[:first_magic]) or "."


def list_images(spec: str) -> List[ImageEntry]:
    """The images named by ``spec``: a folder (searched recursively for IMAGE_EXTENSIONS) or a glob.

    A glob's matches are taken as they are, whatever their extension; sorted by name.
    """
    if os.path.isdir(spec):
        root = spec
        paths = [os.path.join(folder, f) for folder, _, files in os.walk(spec) for f in files
                 if f.lower().endswith(IMAGE_EXTENSIONS)]
    elif glob.has_magic(spec):
        root = _glob_root(spec)
        paths = [p for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
    elif os.path.isfile(spec):
        root, paths = os.path.dirname(spec), [spec]
    else:
        raise FileNotFoundError(f"--images {spec!r} is neither a folder, a file nor a glob that matches")
    entries = [ImageEntry(p, os.path.relpath(p, root).replace(os.sep, "/")) for p in paths]
    return sorted(entries, key=lambda e: e.name)


def _label_id(label: Any, class_ids: Mapping[str, int], num_classes: int, name: str) -> int:
    if isinstance(label, str):
        if label not in class_ids:
            raise ValueError(f"{name}: unknown class name {label!r}")
        return class_ids[label]
    if isinstance(label, int) and 0 < label < num_classes:
        return label
    raise ValueError(f"{name}: label {label!r} is neither a class name nor an id in 1..{num_classes - 1}")


def parse_boxes(data: Mapping[str, Any], obj_classes: Sequence[str]) -> Dict[str, Any]:
    """Per image name, its GivenBoxes, or the ValueError that makes the entry unusable."""
    class_ids = {c: i for i, c in enumerate(obj_classes) if i > 0}
    parsed: Dict[str, Any] = {}
    for name, item in data.items():
        try:
            boxes = torch.as_tensor(item["boxes"], dtype=torch.float32)
            if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
                raise ValueError(f"{name}: 'boxes' must be a non-empty list of [x1, y1, x2, y2]")
            if not bool((boxes[:, 2:] >= boxes[:, :2]).all()):
                raise ValueError(f"{name}: a box has x2 < x1 or y2 < y1")
            labels = item.get("labels")
            if labels is not None:
                if len(labels) != len(boxes):
                    raise ValueError(f"{name}: {len(labels)} labels for {len(boxes)} boxes")
                labels = torch.tensor([_label_id(v, class_ids, len(obj_classes), name) for v in labels])
            parsed[name] = GivenBoxes(boxes, labels)
        except (KeyError, TypeError, ValueError) as err:
            parsed[name] = ValueError(f"boxes of {name}: {err}")
    return parsed


def load_boxes_file(path: str, obj_classes: Sequence[str]) -> Dict[str, Any]:
    """``parse_boxes`` of the JSON file ``path``."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold an object keyed by image name")
    return parse_boxes(data, obj_classes)


@dataclass
class ImageItem:
    """One dataset item: the transformed image and target, or the error that made it fail."""

    index: int
    image: Optional[torch.Tensor] = None
    target: Optional[BoxList] = None
    size: Tuple[int, int] = (0, 0)
    error: Optional[str] = None


class ImageFolderDataset(torch.utils.data.Dataset):
    """``entries`` read as RGB and transformed by ``transforms`` (the test transforms).

    ``boxes``: per image name, GivenBoxes (or an error) for the modes with given boxes;
    None in SGDet. ``require_labels``: PredCls, where the boxes' labels are needed.
    """

    def __init__(self, entries: Sequence[ImageEntry], transforms: Callable, boxes: Optional[Mapping[str, Any]] = None,
                 require_labels: bool = False) -> None:
        self.entries = list(entries)
        self.transforms = transforms
        self.boxes = boxes
        self.require_labels = require_labels

    def __len__(self) -> int:
        return len(self.entries)

    def _target(self, name: str, size: Tuple[int, int]) -> Optional[BoxList]:
        if self.boxes is None:
            return None
        given = self.boxes.get(name)
        if given is None:
            raise ValueError(f"no entry for {name} in the boxes file")
        if isinstance(given, Exception):
            raise given
        if self.require_labels and given.labels is None:
            raise ValueError(f"the boxes of {name} have no 'labels', which PredCls needs")
        target = BoxList(given.boxes, size, "xyxy").clip_to_image(remove_empty=False)
        labels = given.labels if given.labels is not None else torch.zeros(len(given.boxes), dtype=torch.int64)
        target.add_field("labels", labels)
        return target

    def __getitem__(self, index: int) -> ImageItem:
        entry = self.entries[index]
        try:
            with Image.open(entry.path) as raw:
                image = raw.convert("RGB")
            target = self._target(entry.name, image.size)
            tensor, target = self.transforms(image, target)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            return ImageItem(index, error=f"{type(err).__name__}: {err}")
        return ImageItem(index, tensor, target, image.size)


@dataclass
class ImageBatch:
    """The good items of a batch (images unpadded, targets None in SGDet) and the failed ones."""

    images: List[torch.Tensor]
    targets: Optional[List[BoxList]]
    indices: List[int]
    sizes: List[Tuple[int, int]]
    failures: List[Tuple[int, str]]


def collate_images(items: Sequence[ImageItem]) -> ImageBatch:
    """A DataLoader ``collate_fn`` that sets the failed items aside (padding happens at the model)."""
    good = [item for item in items if item.error is None]
    targets = [item.target for item in good] if good and good[0].target is not None else None
    return ImageBatch([item.image for item in good], targets, [item.index for item in good],
                      [item.size for item in good], [(item.index, item.error) for item in items if item.error])
