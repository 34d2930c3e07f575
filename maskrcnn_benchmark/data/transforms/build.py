"""Build the train or test transform pipeline from the config."""
from __future__ import annotations

from typing import Any

from . import transforms as T

# The benchmark hard-codes a 0.5 horizontal-flip probability for training and
# ignores MODEL.FLIP_AUG; its released checkpoints were trained that way, so
# matching their numbers needs the same augmentation.
TRAIN_HORIZONTAL_FLIP_PROB = 0.5


def build_transforms(cfg: Any, is_train: bool = True) -> T.Compose:
    """Compose ColorJitter, Resize, flips, ToTensor and Normalize from ``cfg.INPUT``.

    Training uses the *_TRAIN sizes, the fixed horizontal flip, the configured
    vertical flip and colour jitter; testing uses the *_TEST sizes and no
    randomness at all.
    """
    inp = cfg.INPUT
    if is_train:
        min_size, max_size = inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN
        flip_horizontal_prob = TRAIN_HORIZONTAL_FLIP_PROB
        flip_vertical_prob = inp.VERTICAL_FLIP_PROB_TRAIN
        jitter = T.ColorJitter(inp.BRIGHTNESS, inp.CONTRAST, inp.SATURATION, inp.HUE)
    else:
        min_size, max_size = inp.MIN_SIZE_TEST, inp.MAX_SIZE_TEST
        flip_horizontal_prob = 0.0
        flip_vertical_prob = 0.0
        jitter = T.ColorJitter()
    return T.Compose([
        jitter,
        T.Resize(min_size, max_size),
        T.RandomHorizontalFlip(flip_horizontal_prob),
        T.RandomVerticalFlip(flip_vertical_prob),
        T.ToTensor(),
        T.Normalize(mean=inp.PIXEL_MEAN, std=inp.PIXEL_STD, to_bgr255=inp.TO_BGR255),
    ])
