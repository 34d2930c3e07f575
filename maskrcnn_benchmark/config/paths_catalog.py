"""Dataset catalog: dataset names -> the files they read, relative to DATASETS.DATA_DIR.

A dataset name is ``<catalog entry>_<split>`` with split in {train, val, test}
(parsed at the last underscore), as in the benchmark, or one of the named
``SPLIT_VARIANTS`` (e.g. ``synthetic_vg_test_truth``). Paths are relative, so the
same config works wherever the data lives: set ``DATASETS.DATA_DIR`` (default
``datasets``). To register other datasets without editing this file, point
``PATHS_CATALOG`` at a Python file that defines its own ``DatasetCatalog``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict

SPLITS = ("train", "val", "test")

# Number of train images (the first ones) that the benchmark sets aside as val.
VG150_NUM_VAL_IM = 5000


class DatasetCatalog:
    """Known datasets and how to build their constructor arguments."""

    DATASETS: Dict[str, Dict[str, Any]] = {
        # Visual Genome VG150 as distributed with the Scene-Graph-Benchmark.
        "VG_stanford_filtered_with_attribute": {
            "img_dir": "vg/VG_100K",
            "roidb_file": "vg/VG-SGG-with-attri.h5",
            "dict_file": "vg/VG-SGG-dicts-with-attri.json",
            "image_file": "vg/image_data.json",
            "num_val_im": VG150_NUM_VAL_IM,
        },
        # The synthetic VG150-format set written by tools/make_synthetic_vg.py;
        # its info file says how many train images form the val split.
        "synthetic_vg": {
            "img_dir": "synthetic_vg/VG_100K",
            "roidb_file": "synthetic_vg/VG-SGG-with-attri.h5",
            "dict_file": "synthetic_vg/VG-SGG-dicts-with-attri.json",
            "image_file": "synthetic_vg/image_data.json",
            "info_file": "synthetic_vg/synthetic_vg_info.json",
        },
        # Panoptic Scene Graph laid out as OpenPSG's ``data/`` folder (COCO root ``coco/``,
        # ``psg/psg.json``); the synthetic PSG generator writes the same layout. val and test
        # both read ``test_image_ids``, as OpenPSG's configs do.
        "psg": {
            "factory": "PSGDataset",
            "img_dir": "coco",
            "ann_file": "psg/psg.json",
        },
    }

    # A split of an entry read from another roidb. The synthetic set's truth splits hold
    # each relation's true predicate where the annotated split may hold its coarse
    # parent; boxes, pairs and order are the same, so evaluating against the truth
    # needs no other code path. There is no train truth split: training uses the annotations.
    SPLIT_VARIANTS: Dict[str, Dict[str, str]] = {
        f"synthetic_vg_{split}_truth": {
            "entry": "synthetic_vg", "split": split, "roidb_file": "synthetic_vg/VG-SGG-with-attri-truth.h5",
        } for split in ("val", "test")
    }

    @staticmethod
    def get(name: str, data_dir: str) -> Dict[str, Any]:
        """Return ``{"factory": ..., "args": {...}}`` for dataset ``name`` under ``data_dir``."""
        variant = DatasetCatalog.SPLIT_VARIANTS.get(name, {})
        if variant:
            entry_name, split = variant["entry"], variant["split"]
        else:
            entry_name, _, split = name.rpartition("_")
        if split not in SPLITS or entry_name not in DatasetCatalog.DATASETS:
            known = ", ".join([f"{k}_{{{','.join(SPLITS)}}}" for k in DatasetCatalog.DATASETS]
                              + list(DatasetCatalog.SPLIT_VARIANTS))
            raise KeyError(f"Dataset {name!r} is not in the catalog. Known datasets: {known}. "
                           "Register others with PATHS_CATALOG.")
        entry = {**DatasetCatalog.DATASETS[entry_name], **variant}
        if entry.get("factory") == "PSGDataset":
            return {"factory": "PSGDataset", "args": {
                "split": split, "img_dir": os.path.join(data_dir, entry["img_dir"]),
                "ann_file": os.path.join(data_dir, entry["ann_file"])}}
        args: Dict[str, Any] = {
            key: os.path.join(data_dir, entry[key]) for key in ("img_dir", "roidb_file", "dict_file", "image_file")
        }
        args["split"] = split
        if "info_file" in entry:
            args["num_val_im"] = _num_val_im_from_info(os.path.join(data_dir, entry["info_file"]))
        else:
            args["num_val_im"] = entry["num_val_im"]
        return {"factory": "VGDataset", "args": args}


def _num_val_im_from_info(info_file: str) -> int:
    """Read ``num_val_im`` from a synthetic dataset's info file."""
    if not os.path.isfile(info_file):
        raise FileNotFoundError(
            f"Synthetic dataset info file not found: {info_file}. Generate the dataset with "
            "tools/make_synthetic_vg.py --out <DATASETS.DATA_DIR>/synthetic_vg, or set DATASETS.DATA_DIR.")
    with open(info_file) as f:
        return int(json.load(f)["num_val_im"])
