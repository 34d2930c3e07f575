"""Training and prediction of the CE7454 classifier, one process or several (torchrun).

Training: BCE-with-logits summed over the 56 outputs, optionally weighted per class;
SGD with Nesterov momentum, a per-step cosine schedule from BASE_LR to MIN_LR; each
epoch either a random permutation or the balanced list of ``sampling``, split over the
processes; after each epoch the val mR@3 decides whether to keep the model (>=, as the
starter kit). Prediction: sigmoid probabilities, optionally multiplied for the rare
classes, then the top 3 ids per image.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data

from maskrcnn_benchmark.data.datasets.psg_vocabulary import PREDICATES
from maskrcnn_benchmark.utils.comm import get_rank, get_world_size

from .class_lists import ClassLists, class_lists, class_vector, image_counts
from .data import PSGClsDataset
from .grader import TOP_K
from .metric import mean_recall
from .model import build_classifier
from .sampling import balanced_base, balanced_epoch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClsSettings:
    """Everything the CE7454 tools need, read from the config by ``from_config``."""

    data_file: str
    img_dir: str
    arch: str
    weights: str
    input_size: int
    epochs: int
    batch_size: int
    base_lr: float
    min_lr: float
    momentum: float
    weight_decay: float
    class_lists: str
    low_freq_weight: float
    balanced_sampler: bool
    rare_multiplier: float
    num_workers: int
    seed: int

    @classmethod
    def from_config(cls, cfg) -> "ClsSettings":
        c = cfg.PSG_CLS
        return cls(
            data_file=os.path.join(cfg.DATASETS.DATA_DIR, c.DATA_FILE),
            img_dir=os.path.join(cfg.DATASETS.DATA_DIR, c.IMG_DIR),
            arch=c.ARCH, weights=c.WEIGHTS, input_size=c.INPUT_SIZE, epochs=c.EPOCHS, batch_size=c.BATCH_SIZE,
            base_lr=c.BASE_LR, min_lr=c.MIN_LR, momentum=c.MOMENTUM, weight_decay=c.WEIGHT_DECAY,
            class_lists=c.CLASS_LISTS, low_freq_weight=c.LOW_FREQ_WEIGHT, balanced_sampler=c.BALANCED_SAMPLER,
            rare_multiplier=c.RARE_MULTIPLIER, num_workers=cfg.DATALOADER.NUM_WORKERS, seed=max(cfg.SEED, 0))


def training_lists(settings: ClsSettings) -> ClassLists:
    """The class lists of the settings' source, from the training split's image counts."""
    train = PSGClsDataset(settings.data_file, settings.img_dir, "train", settings.input_size, train=False)
    return class_lists(settings.class_lists, image_counts(train.labels))


def cosine_lr(step: int, total: int, base_lr: float, min_lr: float) -> float:
    """Per-step cosine from ``base_lr`` (step 0) to ``min_lr`` (step ``total``)."""
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum-reduced BCE-with-logits with one weight per class (the report's class-weighted loss)."""
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights.expand_as(logits), reduction="sum")


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, dataset: PSGClsDataset, batch_size: int, device: torch.device,
                          num_workers: int = 0) -> np.ndarray:
    """(N, 56) sigmoid probabilities in dataset order."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    outputs = [torch.sigmoid(model(images.to(device))).cpu() for images, _, _ in loader]
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, len(PREDICATES)), dtype=np.float32)


def top_k(probabilities: np.ndarray, multiplier: Optional[np.ndarray] = None, k: int = TOP_K) -> np.ndarray:
    """(N, k) ids of the largest (multiplied) probabilities, best first, lower id first on ties."""
    scores = probabilities * multiplier if multiplier is not None else probabilities
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def epoch_order(labels: List[List[int]], base: Optional[np.ndarray], rng: np.random.Generator,
                world_size: int = 1) -> np.ndarray:
    """This epoch's image order, the same on every process (drawn from the shared seed), cut to a
    multiple of ``world_size`` so that every process runs the same number of steps."""
    order = balanced_epoch(base, len(labels), rng) if base is not None else rng.permutation(len(labels))
    return order[:len(order) - len(order) % world_size]


def train_classifier(settings: ClsSettings, device: torch.device, distributed: bool) -> Dict[str, Any]:
    """Train and return ``{"state_dict": best model, "best_val": mR@3, "history": [...], "lists": ...}``."""
    train = PSGClsDataset(settings.data_file, settings.img_dir, "train", settings.input_size, train=True)
    val = PSGClsDataset(settings.data_file, settings.img_dir, "val", settings.input_size, train=False)
    lists = class_lists(settings.class_lists, image_counts(train.labels))
    weights = torch.from_numpy(class_vector(lists.low, settings.low_freq_weight)).to(device)
    multiplier = class_vector(lists.multiplied, settings.rare_multiplier)
    base = balanced_base(train.labels, lists) if settings.balanced_sampler else None
    model = build_classifier(settings.arch, len(PREDICATES), settings.weights).to(device)
    module = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.base_lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay, nesterov=True)
    rng = np.random.default_rng(settings.seed)
    rank, world = get_rank(), get_world_size()
    orders = [epoch_order(train.labels, base, rng, world) for _ in range(settings.epochs)]
    steps_per_epoch = [math.ceil(len(order[rank::world]) / settings.batch_size) for order in orders]
    total, step = sum(steps_per_epoch), 0
    best: Dict[str, Any] = {"best_val": -1.0, "state_dict": None, "history": [], "lists": lists.__dict__}
    for epoch, order in enumerate(orders):
        module.train()
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train, order[rank::world].tolist()),
                                             batch_size=settings.batch_size, num_workers=settings.num_workers)
        losses = []
        for images, targets, _ in loader:
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, settings.base_lr, settings.min_lr)
            loss = weighted_bce(module(images.to(device)), targets.to(device), weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
        probabilities = predict_probabilities(model, val, settings.batch_size, device, settings.num_workers)
        score = mean_recall(val.labels, top_k(probabilities, multiplier).tolist()).score
        best["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_mR@3": score})
        logger.info("epoch %d/%d: train loss %.3f, val mR@3 %.4f", epoch + 1, settings.epochs, np.mean(losses), score)
        if score >= best["best_val"]:
            best["best_val"] = score
            best["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return best
