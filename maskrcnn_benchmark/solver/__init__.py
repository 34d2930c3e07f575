"""Optimizer and learning-rate schedules."""
from .build import make_lr_scheduler, make_optimizer
from .lr_scheduler import WarmupMultiStepLR, WarmupReduceLROnPlateau

__all__ = ["make_lr_scheduler", "make_optimizer", "WarmupMultiStepLR", "WarmupReduceLROnPlateau"]
