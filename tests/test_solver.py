"""Optimizer parameter groups and the two learning-rate schedules (benchmark semantics)."""
import io
from bisect import bisect_right

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.solver import (WarmupMultiStepLR, WarmupReduceLROnPlateau, make_lr_scheduler,
                                       make_optimizer)


def sgd(lr=1.0, groups=2):
    params = [nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)], lr=lr)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.head = nn.Linear(2, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_param_groups_follow_bias_factor_slow_heads_and_batch_scaling():
    cfg = default_cfg.clone()
    cfg.SOLVER.BASE_LR, cfg.SOLVER.BIAS_LR_FACTOR = 0.01, 2
    cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.WEIGHT_DECAY_BIAS, cfg.SOLVER.MOMENTUM = 1e-4, 0.0, 0.9
    model = Net()
    optimizer = make_optimizer(cfg, model, slow_heads=["head"], slow_ratio=10.0, rl_factor=12.0)
    assert len(optimizer.param_groups) == 4  # one per trainable tensor, frozen ones left out
    by_param = {id(g["params"][0]): g for g in optimizer.param_groups}
    expected = {
        "backbone.weight": (0.01 * 12, 1e-4),
        "backbone.bias": (0.01 * 2 * 12, 0.0),
        "head.weight": (0.01 / 10 * 12, 1e-4),
        "head.bias": (0.01 * 2 / 10 * 12, 0.0),
    }
    for name, param in model.named_parameters():
        if name.startswith("frozen"):
            assert id(param) not in by_param
            continue
        group = by_param[id(param)]
        assert group["lr"] == pytest.approx(expected[name][0]) and group["weight_decay"] == expected[name][1]
        assert group["momentum"] == 0.9


def closed_form_multistep(t, base, milestones, gamma, factor, warmup, method):
    if t < warmup:
        w = factor if method == "constant" else factor * (1 - t / warmup) + t / warmup
    else:
        w = 1.0
    return base * w * gamma ** bisect_right(milestones, t)


@pytest.mark.parametrize("method", ["linear", "constant"])
def test_warmup_multistep_matches_closed_form(method):
    optimizer = sgd(lr=0.5)
    scheduler = WarmupMultiStepLR(optimizer, [15, 30], gamma=0.1, warmup_factor=0.2, warmup_iters=10,
                                  warmup_method=method)
    for t in range(40):
        assert scheduler.last_epoch == t
        for base, lr in zip([0.5, 1.0], scheduler.get_last_lr()):
            assert lr == pytest.approx(closed_form_multistep(t, base, [15, 30], 0.1, 0.2, 10, method))
        scheduler.step()
    scheduler.step(epoch=3)
    assert scheduler.get_last_lr()[0] == pytest.approx(closed_form_multistep(3, 0.5, [15, 30], 0.1, 0.2, 10, method))


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiStepLR(sgd(), [30, 15])
    with pytest.raises(ValueError, match="warmup_method"):
        WarmupReduceLROnPlateau(sgd(), warmup_method="cosine")


def test_plateau_follows_patience_threshold_and_cooldown():
    optimizer = sgd(lr=1.0, groups=1)
    scheduler = WarmupReduceLROnPlateau(optimizer, gamma=0.1, warmup_iters=0, patience=2, threshold=0.01,
                                        cooldown=1, max_decay_step=2)
    # The benchmark's constructor records a first metric of 0 and uses one cooldown step.
    assert (scheduler.last_epoch, scheduler.best, scheduler.under_cooldown) == (1, 0.0, 0)
    metrics = [0.5, None, 0.505, 0.50, None, 0.6, 0.59, 0.58, 0.57, 0.56, 0.55]
    expected_stage = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3]
    expected_best = [0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    for i, (metric, stage, best) in enumerate(zip(metrics, expected_stage, expected_best), start=2):
        scheduler.step(metric, epoch=i)
        assert (scheduler.stage_count, scheduler.best, scheduler.last_epoch) == (stage, best, i), (i, metric)
        assert scheduler.get_last_lr()[0] == pytest.approx(0.1 ** stage)
        assert scheduler.reached_max_decay == (stage >= 2)


def test_plateau_warmup_and_no_cooldown():
    optimizer = sgd(lr=2.0, groups=1)
    scheduler = WarmupReduceLROnPlateau(optimizer, gamma=0.5, warmup_factor=0.1, warmup_iters=10, patience=1,
                                        threshold=0.0, cooldown=0)
    assert scheduler.get_last_lr()[0] == pytest.approx(2.0 * (0.1 * 0.9 + 0.1))  # at iteration 1
    scheduler.step(None, epoch=5)
    assert scheduler.get_last_lr()[0] == pytest.approx(2.0 * (0.1 * 0.5 + 0.5))
    scheduler.step(0.0, epoch=6)  # not above best (0.0): patience 1 reached at once
    assert scheduler.stage_count == 1
    assert scheduler.get_last_lr()[0] == pytest.approx(2.0 * (0.1 * 0.4 + 0.6) * 0.5)
    scheduler.step(None, epoch=20)
    assert scheduler.get_last_lr()[0] == pytest.approx(1.0)


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_plateau_state_dict_round_trip_continues_identically():
    def build():
        return WarmupReduceLROnPlateau(sgd(lr=1.0), gamma=0.5, warmup_iters=4, patience=1, threshold=0.0,
                                       cooldown=1, max_decay_step=5)

    metrics = [None, 0.3, None, 0.2, 0.2, None, 0.4, 0.1, 0.1, 0.1]
    original = build()
    for i, m in enumerate(metrics[:5], start=1):
        original.step(m, epoch=i)
    restored = build()
    restored.load_state_dict(roundtrip(original.state_dict()))
    assert restored.get_last_lr() == original.get_last_lr()
    for i, m in enumerate(metrics[5:], start=6):
        original.step(m, epoch=i)
        restored.step(m, epoch=i)
        assert restored.get_last_lr() == original.get_last_lr()
        assert restored.state_dict() == original.state_dict()
    assert original.stage_count >= 2


def test_multistep_state_dict_round_trip_and_torch_style_state():
    original = WarmupMultiStepLR(sgd(), [3, 6], warmup_iters=2)
    for _ in range(4):
        original.step()
    restored = WarmupMultiStepLR(sgd(), [3, 6], warmup_iters=2)
    restored.load_state_dict(roundtrip(original.state_dict()))
    assert restored.last_epoch == 4 and restored.get_last_lr() == original.get_last_lr()
    # A scheduler state saved by the benchmark (torch's _LRScheduler) carries extra keys.
    legacy = dict(original.state_dict(), _step_count=5, verbose=False, _get_lr_called_within_step=False,
                  _last_lr=[0.1, 0.2])
    again = WarmupMultiStepLR(sgd(), [3, 6], warmup_iters=2)
    again.load_state_dict(legacy)
    assert again.get_last_lr() == original.get_last_lr()


def test_make_lr_scheduler_reads_solver_keys():
    cfg = default_cfg.clone()
    cfg.SOLVER.SCHEDULE.TYPE = "WarmupReduceLROnPlateau"
    cfg.SOLVER.SCHEDULE.FACTOR, cfg.SOLVER.SCHEDULE.PATIENCE = 0.1, 3
    cfg.SOLVER.SCHEDULE.THRESHOLD, cfg.SOLVER.SCHEDULE.COOLDOWN, cfg.SOLVER.SCHEDULE.MAX_DECAY_STEP = 1e-3, 0, 3
    scheduler = make_lr_scheduler(cfg, sgd())
    assert isinstance(scheduler, WarmupReduceLROnPlateau)
    assert (scheduler.gamma, scheduler.patience, scheduler.threshold, scheduler.cooldown,
            scheduler.max_decay_step) == (0.1, 3, 1e-3, 0, 3)
    cfg.SOLVER.SCHEDULE.TYPE = "WarmupMultiStepLR"
    scheduler = make_lr_scheduler(cfg, sgd())
    assert isinstance(scheduler, WarmupMultiStepLR) and scheduler.milestones == list(cfg.SOLVER.STEPS)
    cfg.SOLVER.SCHEDULE.TYPE = "Cosine"
    with pytest.raises(ValueError, match="SOLVER.SCHEDULE.TYPE"):
        make_lr_scheduler(cfg, sgd())
