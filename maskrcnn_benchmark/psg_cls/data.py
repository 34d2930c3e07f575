"""The CE7454 data file (``psg_cls_basic.json``) and its images as a classification dataset.

A split ("stage") is the ``data`` entries whose ``image_id`` is in ``<stage>_image_ids``,
in file order (the order of the grader's lines). The target is the 56-dim multi-hot of
the entry's ``relations``; test entries may hold none (labels hidden).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

import torch
import torch.utils.data
from PIL import Image
from torchvision import transforms as T

from maskrcnn_benchmark.data.datasets.psg_vocabulary import PREDICATES

STAGES = ("train", "val", "test")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_stage(data_file: str, stage: str) -> List[Dict[str, Any]]:
    """Entries of ``stage``, checked: each has image_id, file_name and ids in 0..55."""
    if stage not in STAGES:
        raise ValueError(f"stage should be one of {STAGES}, got {stage!r}")
    if not os.path.isfile(data_file):
        raise FileNotFoundError(f"CE7454 data file not found at {data_file} (set DATASETS.DATA_DIR or "
                                "PSG_CLS.DATA_FILE)")
    with open(data_file) as f:
        content = json.load(f)
    key = f"{stage}_image_ids"
    for needed in ("data", key):
        if needed not in content:
            raise ValueError(f"{data_file} lacks the top-level key {needed!r}")
    ids = set(content[key])
    entries = [entry for entry in content["data"] if entry.get("image_id") in ids]
    for entry in entries:
        for field in ("file_name", "relations"):
            if field not in entry:
                raise ValueError(f"{data_file}, image_id {entry['image_id']}: entry lacks {field!r}")
        bad = [p for p in entry["relations"] if not 0 <= int(p) < len(PREDICATES)]
        if bad:
            raise ValueError(f"{data_file}, image_id {entry['image_id']}: relations {bad} outside 0..55")
    return entries


def image_transform(input_size: int, train: bool) -> T.Compose:
    """Square resize, a horizontal flip in training, ImageNet normalisation."""
    steps: List[Any] = [T.Resize((input_size, input_size))]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)


class PSGClsDataset(torch.utils.data.Dataset):
    """Item ``(image tensor, 56-dim float multi-hot target, index)`` of one CE7454 stage."""

    def __init__(self, data_file: str, img_dir: str, stage: str, input_size: int, train: bool) -> None:
        self.data_file = data_file
        self.img_dir = img_dir
        self.entries = load_stage(data_file, stage)
        self.labels = [sorted({int(p) for p in entry["relations"]}) for entry in self.entries]
        self.transform = image_transform(input_size, train)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
        entry = self.entries[index]
        path = os.path.join(self.img_dir, entry["file_name"])
        try:
            image = Image.open(path).convert("RGB")
        except OSError as err:
            raise OSError(f"{self.data_file}, image_id {entry['image_id']}: cannot read {path} ({err})") from err
        target = torch.zeros(len(PREDICATES))
        target[self.labels[index]] = 1.0
        return self.transform(image), target, index
