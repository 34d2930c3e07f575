"""Builders that turn the config into datasets, data loaders and dataset statistics."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch.utils.data

from maskrcnn_benchmark.config.paths_catalog import DatasetCatalog
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.comm import get_rank, get_world_size

from . import datasets as D
from .aspect_ratio_grouping import make_batch_data_sampler
from .collate_batch import BatchCollator
from .datasets.subset import IndexFilter, restrict_dataset
from .samplers import DistributedSampler
from .transforms import build_transforms

logger = logging.getLogger(__name__)

_STATISTICS_CACHE_VERSION = 1
MODES = ("train", "val", "test")


def load_dataset_catalog(cfg) -> type:
    """The built-in DatasetCatalog, or the one defined in the file named by PATHS_CATALOG."""
    if not cfg.PATHS_CATALOG:
        return DatasetCatalog
    if not os.path.isfile(cfg.PATHS_CATALOG):
        raise FileNotFoundError(f"PATHS_CATALOG points to {cfg.PATHS_CATALOG}, which does not exist")
    spec = importlib.util.spec_from_file_location("user_paths_catalog", cfg.PATHS_CATALOG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "DatasetCatalog"):
        raise AttributeError(f"PATHS_CATALOG file {cfg.PATHS_CATALOG} defines no DatasetCatalog")
    return module.DatasetCatalog


def dataset_args(cfg, name: str) -> Dict[str, Any]:
    """Constructor arguments of dataset ``name``: catalog paths plus the config's filters."""
    data = load_dataset_catalog(cfg).get(name, cfg.DATASETS.DATA_DIR)
    args = dict(data["args"])
    if data["factory"] == "VGDataset":
        relation_on = cfg.MODEL.RELATION_ON
        head = cfg.MODEL.ROI_RELATION_HEAD
        args["filter_empty_rels"] = relation_on
        args["filter_non_overlap"] = (not head.USE_GT_BOX) and relation_on and head.REQUIRE_BOX_OVERLAP
        args["flip_aug"] = cfg.MODEL.FLIP_AUG
        if cfg.DATASETS.KEEP_ALL_PREDICATES:
            args["keep_all_predicates"] = True
    elif data["factory"] == "PSGDataset":
        args["filter_empty_rels"] = cfg.MODEL.RELATION_ON
        args["flip_aug"] = cfg.MODEL.FLIP_AUG
    return {"factory": data["factory"], "args": args}


def build_dataset(cfg, dataset_list: Sequence[str], transforms=None) -> List[torch.utils.data.Dataset]:
    """Build one dataset per catalog name."""
    if not isinstance(dataset_list, (list, tuple)) or not dataset_list:
        raise ValueError(f"dataset_list should be a non-empty list of dataset names, got {dataset_list!r}")
    built = []
    for name in dataset_list:
        data = dataset_args(cfg, name)
        factory = getattr(D, data["factory"])
        built.append(factory(transforms=transforms, **data["args"]))
        logger.info("Dataset %s: %d images", name, len(built[-1]))
    return built


def _dataset_names(cfg, mode: str) -> Sequence[str]:
    if mode == "train":
        return cfg.DATASETS.TRAIN
    if mode == "val":
        return cfg.DATASETS.VAL
    return cfg.DATASETS.TEST


def _make_sampler(dataset, shuffle: bool, distributed: bool) -> torch.utils.data.Sampler:
    """Shuffled training always goes through DistributedSampler so its order is seeded by epoch
    and a resumed run continues the same sequence, with one process or many. Evaluation
    shards are not padded, so every image is evaluated exactly once across ranks."""
    if shuffle or distributed:
        return DistributedSampler(dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=shuffle,
                                  pad=shuffle)
    return torch.utils.data.SequentialSampler(dataset)


def make_data_loader(cfg, mode: str = "train", is_distributed: bool = False,
                     start_iter: int = 0, index_filter: Optional[IndexFilter] = None) -> Any:
    """The benchmark's data loaders: one iteration-based loader for train, a list otherwise.

    The batch sizes in the config are global: each of the ``world_size`` processes
    loads ``IMS_PER_BATCH / world_size`` images. ``index_filter(dataset)``, when
    given, returns the indices of the images to use; samplers and batching then
    run over that subset (train: over the concatenated datasets).

    Each loader draws its workers' base seed here, into a generator of its own,
    rather than from the global random stream when it starts iterating: a resumed
    run restores the global stream after building its loaders, and then follows
    the uninterrupted run's stream exactly.
    """
    if mode not in MODES:
        raise ValueError(f"mode should be one of {MODES}, got {mode!r}")
    is_train = mode == "train"
    world_size = get_world_size()
    images_per_batch = cfg.SOLVER.IMS_PER_BATCH if is_train else cfg.TEST.IMS_PER_BATCH
    batch_key = "SOLVER.IMS_PER_BATCH" if is_train else "TEST.IMS_PER_BATCH"
    if images_per_batch % world_size != 0:
        raise ValueError(f"{batch_key} ({images_per_batch}) must be divisible by the number of processes "
                         f"({world_size})")
    images_per_gpu = images_per_batch // world_size
    num_iters: Optional[int] = cfg.SOLVER.MAX_ITER if is_train else None
    aspect_grouping = [1] if cfg.DATALOADER.ASPECT_RATIO_GROUPING else []

    datasets = build_dataset(cfg, _dataset_names(cfg, mode), build_transforms(cfg, is_train))
    if is_train:
        datasets = [torch.utils.data.ConcatDataset(datasets)] if len(datasets) > 1 else datasets
    if index_filter is not None:
        datasets = [restrict_dataset(dataset, index_filter) for dataset in datasets]
    loaders = []
    for dataset in datasets:
        sampler = _make_sampler(dataset, shuffle=is_train, distributed=is_distributed)
        batch_sampler = make_batch_data_sampler(dataset, sampler, aspect_grouping, images_per_gpu,
                                                num_iters, start_iter if is_train else 0)
        loaders.append(torch.utils.data.DataLoader(
            dataset, num_workers=cfg.DATALOADER.NUM_WORKERS, batch_sampler=batch_sampler,
            collate_fn=BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY),
            generator=torch.Generator().manual_seed(int(torch.randint(2 ** 62, (1,))))))
    return loaders[0] if is_train else loaders


# ---------------------------------------------------------------------------
# Dataset statistics (frequency bias), cached in OUTPUT_DIR
# ---------------------------------------------------------------------------
def _file_stamp(path: str) -> Dict[str, Any]:
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# Constructor arguments naming the files the statistics are computed from (VG150: roidb and
# dictionary; PSG: psg.json).
_LABEL_FILE_ARGS = ("roidb_file", "dict_file", "ann_file")


def _statistics_fingerprint(args: Dict[str, Any]) -> str:
    """What the statistics depend on: the label files and the val split size (where there is one)."""
    key: Dict[str, Any] = {"version": _STATISTICS_CACHE_VERSION}
    key.update({name: _file_stamp(args[name]) for name in _LABEL_FILE_ARGS if name in args})
    if "num_val_im" in args:
        key["num_val_im"] = args["num_val_im"]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def statistics_cache_file(cfg) -> str:
    """``OUTPUT_DIR/<train names>_statistics.cache``, the benchmark's cache location."""
    return os.path.join(cfg.OUTPUT_DIR, "".join(cfg.DATASETS.TRAIN) + "_statistics.cache")


def _load_statistics_cache(path: str, fingerprint: str) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["fingerprint"]) != fingerprint:
                logger.info("Statistics cache %s is for other data files; recomputing", path)
                return None
            return {
                "fg_matrix": torch.from_numpy(data["fg_matrix"]),
                "pred_dist": torch.from_numpy(data["pred_dist"]),
                "obj_classes": data["obj_classes"].tolist(),
                "rel_classes": data["rel_classes"].tolist(),
                "att_classes": data["att_classes"].tolist(),
            }
    except (OSError, KeyError, ValueError) as err:
        logger.warning("Ignoring unreadable statistics cache %s (%s)", path, err)
        return None


def _save_statistics_cache(path: str, fingerprint: str, stats: Dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, fingerprint=np.array(fingerprint), fg_matrix=np.asarray(stats["fg_matrix"]),
                 pred_dist=np.asarray(stats["pred_dist"]), obj_classes=np.array(stats["obj_classes"]),
                 rel_classes=np.array(stats["rel_classes"]), att_classes=np.array(stats["att_classes"]))


def get_dataset_statistics(cfg) -> Dict[str, Any]:
    """Predicate statistics of the training set: tensors fg_matrix, pred_dist and the class names.

    Computed once on the overlap-filtered train split as the benchmark does, then
    reused from ``statistics_cache_file(cfg)`` while the label files and
    ``num_val_im`` are unchanged (the benchmark keyed its cache on the dataset
    name only, so a stale cache survived a change of data).
    """
    names = cfg.DATASETS.TRAIN
    if len(names) != 1:
        raise ValueError(f"Dataset statistics need exactly one training dataset, DATASETS.TRAIN is {names}")
    data = load_dataset_catalog(cfg).get(names[0], cfg.DATASETS.DATA_DIR)
    fingerprint = _statistics_fingerprint(data["args"])
    cache_file = statistics_cache_file(cfg)
    cached = _load_statistics_cache(cache_file, fingerprint)
    if cached is not None:
        logger.info("Loaded dataset statistics from %s", cache_file)
        return cached
    logger.info("Computing dataset statistics of %s (cached afterwards in %s)", names[0], cache_file)
    factory = getattr(D, data["factory"])
    stats = factory(**data["args"]).get_statistics()
    _save_statistics_cache(cache_file, fingerprint, stats)
    return stats
