"""A deterministic toy regression problem for the training-loop tests (single and multi-process)."""
from __future__ import annotations

import torch
from torch import nn

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.aspect_ratio_grouping import make_batch_data_sampler
from maskrcnn_benchmark.data.samplers import DistributedSampler
from maskrcnn_benchmark.solver import make_lr_scheduler, make_optimizer

NUM_SAMPLES = 32
IN_DIM = 4


class ToyDataset(torch.utils.data.Dataset):
    """``(x, y, index)`` with y a fixed linear function of x plus a little noise."""

    def __init__(self, n: int = NUM_SAMPLES, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, IN_DIM, generator=g)
        w = torch.tensor([[1.5], [-2.0], [0.5], [3.0]])
        self.y = self.x @ w + 0.7 + 0.01 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], i


def collate(batch):
    xs, ys, ids = zip(*batch)
    return torch.stack(xs), torch.stack(ys), tuple(ids)


class ToyModel(nn.Module):
    """Two-layer regressor that returns a dict of two loss terms, like the detector does."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Linear(IN_DIM, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x, y=None):
        pred = self.head(torch.relu(self.body(x)))
        if not self.training:
            return pred
        return {"loss_mse": ((pred - y) ** 2).mean(), "loss_l1": 0.1 * (pred - y).abs().mean()}


def toy_cfg(max_iter: int = 20, schedule: str = "WarmupMultiStepLR"):
    cfg = default_cfg.clone()
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.BIAS_LR_FACTOR = 2
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    cfg.SOLVER.STEPS = (12,)
    cfg.SOLVER.WARMUP_ITERS = 5
    cfg.SOLVER.SCHEDULE.TYPE = schedule
    cfg.SOLVER.SCHEDULE.PATIENCE = 1
    cfg.SOLVER.SCHEDULE.COOLDOWN = 0
    cfg.SOLVER.SCHEDULE.MAX_DECAY_STEP = 10
    return cfg


def make_loader(dataset, max_iter: int, start_iter: int = 0, images_per_batch: int = 4,
                num_replicas: int = 1, rank: int = 0):
    """The project's iteration-based, resumable, shuffled batch sampling over ``dataset``."""
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True)
    batch_sampler = make_batch_data_sampler(dataset, sampler, [], images_per_batch, max_iter, start_iter)
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate, num_workers=0)


def make_training(cfg, seed: int = 0, model_cls=ToyModel):
    """(model, optimizer, scheduler) as the tools build them."""
    model = model_cls(seed)
    optimizer = make_optimizer(cfg, model, rl_factor=2.0)
    scheduler = make_lr_scheduler(cfg, optimizer)
    return model, optimizer, scheduler
