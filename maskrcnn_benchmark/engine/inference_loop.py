"""Model-agnostic inference over a (sharded) data loader that hands each batch to a callback.

Under distributed testing every process iterates its own shard (the test loaders
of ``make_data_loader(..., is_distributed=True)`` use the contiguous-shard
DistributedSampler); the callback typically feeds a streaming evaluator and the
caller gathers the evaluator's state afterwards. Test shards are not padded, so
every image is seen by exactly one process.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from tqdm import tqdm

from maskrcnn_benchmark.utils.comm import is_main_process

from .trainer import move_to_device


@dataclass
class InferenceStats:
    """Timing of one :func:`run_inference` call on this process."""

    num_batches: int
    num_images: int
    total_seconds: float
    model_seconds: float

    @property
    def seconds_per_image(self) -> float:
        return self.model_seconds / max(self.num_images, 1)


def run_inference(model: torch.nn.Module, data_loader: Any, device: torch.device,
                  on_batch: Callable[[Sequence[int], Any], None], *, amp_dtype: Optional[torch.dtype] = None,
                  desc: str = "inference", logger: Optional[logging.Logger] = None) -> InferenceStats:
    """Run ``model(images, targets)`` in eval mode without gradients on every batch of ``data_loader``.

    Batches are ``(images, targets, image_ids)``; the targets are passed because
    the relation model uses the ground-truth boxes in PredCls / SGCls. The
    outputs are moved to the CPU and passed to ``on_batch(image_ids, outputs)``.
    The model's train/eval mode is restored afterwards. ``model_seconds`` counts
    the forward passes only (CUDA is synchronised around them).
    """
    logger = logger or logging.getLogger("maskrcnn_benchmark.inference")
    was_training = model.training
    model.eval()
    num_batches = num_images = 0
    model_seconds = 0.0
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for batch in tqdm(data_loader, desc=desc, disable=not is_main_process(), dynamic_ncols=True):
                images, targets, image_ids = batch[0], batch[1], batch[2]
                images, targets = move_to_device(images, device), move_to_device(targets, device)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                tic = time.perf_counter()
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    outputs = model(images, targets)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                model_seconds += time.perf_counter() - tic
                on_batch(list(image_ids), move_to_device(outputs, torch.device("cpu")))
                num_batches += 1
                num_images += len(image_ids)
    finally:
        model.train(was_training)
    stats = InferenceStats(num_batches, num_images, time.perf_counter() - start, model_seconds)
    logger.info("Inference on %d images (this process): %.1f s total, %.4f s / image in the model",
                stats.num_images, stats.total_seconds, stats.seconds_per_image)
    return stats
