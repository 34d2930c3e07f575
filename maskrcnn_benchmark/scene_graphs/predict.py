"""Scene graphs for a list of images: batched, sharded, resumable forward passes and their files.

Under the output folder ``OUT``:

- ``graphs/<name>.json``: the image's record (``records.scene_graph_record``);
- ``graphs/<name>.png``: its drawing (``drawing.draw_scene_graph``);
- ``index.html``: every image that has a record (``html_index``), written by rank 0;
- ``summary.json``: counts, timing and the failed images with their errors, written by rank 0.

An image whose JSON and PNG both exist is done and not run again, so an interrupted run
continues where it stopped. Every file is written atomically. Each process of a torchrun
job takes every ``world_size``-th pending image.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from tqdm import tqdm

from maskrcnn_benchmark.config.modes import check_mode
from maskrcnn_benchmark.data.transforms import build_transforms
from maskrcnn_benchmark.engine.trainer import move_to_device
from maskrcnn_benchmark.structures import BoxList, to_image_list
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.comm import get_rank, get_world_size, is_main_process

from .drawing import draw_scene_graph
from .html_index import IndexCard, render_index
from .images import ImageBatch, ImageEntry, ImageFolderDataset, collate_images
from .model_file import SceneGraphModel
from .records import record_triplets, scene_graph_record

GRAPHS_DIR = "graphs"
INDEX_FILE = "index.html"
SUMMARY_FILE = "summary.json"
MODE_SWITCHES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}


def mode_overrides(mode: str) -> List[str]:
    """The ``KEY VALUE`` overrides that select relation task ``mode``."""
    use_gt_box, use_gt_label = MODE_SWITCHES[check_mode(mode)]
    return ["MODEL.ROI_RELATION_HEAD.USE_GT_BOX", str(use_gt_box),
            "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", str(use_gt_label)]


@dataclass(frozen=True)
class PredictSettings:
    """How many images per forward pass and loader workers, and how many relations go where."""

    mode: str = "sgdet"
    batch_size: int = 2
    num_workers: int = 0
    json_relations: int = 100
    drawn_relations: int = 10
    table_relations: int = 20


def output_files(out_dir: str, name: str) -> Tuple[str, str]:
    """``(json, png)`` paths of image ``name``."""
    base = os.path.join(out_dir, GRAPHS_DIR, *name.split("/"))
    return base + ".json", base + ".png"


def is_done(out_dir: str, name: str) -> bool:
    return all(os.path.isfile(path) for path in output_files(out_dir, name))


@dataclass
class ShardReport:
    """What one process did: images written, images that failed (name, file, error), seconds."""

    written: int = 0
    failures: List[Dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def _write_bytes(data: bytes, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_image_outputs(sg: SceneGraphModel, entry: ImageEntry, output: BoxList, size: Tuple[int, int],
                        out_dir: str, settings: PredictSettings) -> None:
    """The JSON record and the PNG drawing of one image."""
    record = scene_graph_record(output, entry.path, entry.name, size, settings.mode, sg.obj_classes,
                                sg.rel_classes, settings.json_relations)
    with Image.open(entry.path) as raw:
        image_bgr = cv2.cvtColor(np.asarray(raw.convert("RGB")), cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", draw_scene_graph(image_bgr, record, settings.drawn_relations))
    if not ok:
        raise ValueError(f"OpenCV could not encode the drawing of {entry.name}")
    json_file, png_file = output_files(out_dir, entry.name)
    _write_bytes(png.tobytes(), png_file)
    _write_bytes(json.dumps(record).encode("utf-8"), json_file)  # last: the image counts as done


def _forward(model: torch.nn.Module, images: Sequence[torch.Tensor], targets: Optional[Sequence[BoxList]],
             size_divisible: int, device: torch.device) -> List[BoxList]:
    batch = to_image_list(list(images), size_divisible).to(device)
    with torch.no_grad():
        outputs = model(batch, move_to_device(list(targets), device) if targets is not None else None)
    return move_to_device(list(outputs), torch.device("cpu"))


def _predict_batch(sg: SceneGraphModel, batch: ImageBatch, device: torch.device
                   ) -> List[Tuple[int, Any]]:
    """``(index, output BoxList or error text)`` per good image; a failed batch is retried image by image."""
    divisible = sg.cfg.DATALOADER.SIZE_DIVISIBILITY
    try:
        return list(zip(batch.indices, _forward(sg.model, batch.images, batch.targets, divisible, device)))
    except (RuntimeError, ValueError, IndexError) as err:
        if len(batch.indices) == 1:
            return [(batch.indices[0], f"{type(err).__name__}: {err}")]
    results: List[Tuple[int, Any]] = []
    for k, index in enumerate(batch.indices):
        targets = [batch.targets[k]] if batch.targets is not None else None
        try:
            results.append((index, _forward(sg.model, [batch.images[k]], targets, divisible, device)[0]))
        except (RuntimeError, ValueError, IndexError) as err:
            results.append((index, f"{type(err).__name__}: {err}"))
    return results


def predict_shard(sg: SceneGraphModel, entries: Sequence[ImageEntry], out_dir: str,
                  boxes: Optional[Mapping[str, Any]], settings: PredictSettings, device: torch.device,
                  logger: logging.Logger) -> ShardReport:
    """Run this process's share of the images of ``entries`` that are not done yet and write their files."""
    report = ShardReport()
    start = time.perf_counter()
    shard = [e for e in entries if not is_done(out_dir, e.name)][get_rank()::get_world_size()]
    dataset = ImageFolderDataset(shard, build_transforms(sg.cfg, is_train=False), boxes,
                                 require_labels=settings.mode == "predcls")
    loader = torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size, shuffle=False,
                                         num_workers=settings.num_workers, collate_fn=collate_images)

    def fail(index: int, error: str) -> None:
        entry = shard[index]
        logger.warning("Skipping %s (%s): %s", entry.name, entry.path, error)
        report.failures.append({"image": entry.name, "img_file": entry.path, "error": error})

    sizes = {}
    with tqdm(total=len(shard), desc="scene graphs", unit="img", disable=not is_main_process(),
              dynamic_ncols=True) as progress:
        for batch in loader:
            for index, error in batch.failures:
                fail(index, error)
            sizes.update(zip(batch.indices, batch.sizes))
            for index, output in (_predict_batch(sg, batch, device) if batch.indices else []):
                if isinstance(output, str):
                    fail(index, output)
                    continue
                try:
                    write_image_outputs(sg, shard[index], output, sizes[index], out_dir, settings)
                    report.written += 1
                except (OSError, ValueError, cv2.error) as err:
                    fail(index, f"{type(err).__name__}: {err}")
            progress.update(len(batch.indices) + len(batch.failures))
    report.seconds = time.perf_counter() - start
    return report


def gather_reports(report: ShardReport) -> List[ShardReport]:
    """Every process's report on rank 0 (``[report]`` without a process group; ``[]`` off rank 0)."""
    if get_world_size() == 1:
        return [report]
    parts: Optional[List[Any]] = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(report, parts, dst=0)
    return list(parts or [])


def _read_record(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_index(entries: Sequence[ImageEntry], out_dir: str, settings: PredictSettings, title: str) -> int:
    """``index.html`` over the images of ``entries`` that have their files; returns their number."""
    cards = []
    for entry in entries:
        json_file, png_file = output_files(out_dir, entry.name)
        record = _read_record(json_file) if os.path.isfile(png_file) else None
        if record is None:
            continue
        cards.append(IndexCard(entry.name, os.path.relpath(png_file, out_dir).replace(os.sep, "/"),
                               os.path.relpath(json_file, out_dir).replace(os.sep, "/"),
                               record_triplets(record)[:settings.table_relations]))
    _write_bytes(render_index(cards, title).encode("utf-8"), os.path.join(out_dir, INDEX_FILE))
    return len(cards)


def write_summary(reports: Sequence[ShardReport], entries: Sequence[ImageEntry], indexed: int, out_dir: str,
                  model_path: str, settings: PredictSettings) -> Dict[str, Any]:
    """``summary.json``: this run's counts and timing over all processes, and the failed images."""
    written = sum(r.written for r in reports)
    seconds = max((r.seconds for r in reports), default=0.0)
    failures = sorted((f for r in reports for f in r.failures), key=lambda f: f["image"])
    summary = {
        "model": model_path, "mode": settings.mode, "images": len(entries), "written": written,
        "already_done": len(entries) - written - len(failures), "failed": failures, "in_index": indexed,
        "processes": len(reports), "seconds": round(seconds, 3),
        "images_per_second": round(written / seconds, 3) if seconds > 0 and written else None,
    }
    _write_bytes(json.dumps(summary, indent=1).encode("utf-8"), os.path.join(out_dir, SUMMARY_FILE))
    return summary
