"""Paired image/target transforms used by the data loaders.

Every transform is a callable taking and returning ``(image, target)``. The
image is a PIL image before :class:`ToTensor` and a ``[C, H, W]`` float tensor
after it; the target is a :class:`~maskrcnn_benchmark.structures.BoxList` or
``None`` (inference on bare images). Geometry-changing transforms update the
target together with the image so boxes stay aligned with pixels.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
import torchvision.transforms as tv_transforms
import torchvision.transforms.functional as F
from PIL import Image

from maskrcnn_benchmark.structures import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList

Target = Optional[BoxList]
ImageLike = Union[Image.Image, torch.Tensor]
Pair = Tuple[Any, Target]


class Compose:
    """Apply a sequence of paired transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Any, Target], Pair]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, target: Target = None) -> Pair:
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{self.__class__.__name__}({inner}\n)"


def _image_hw(image: ImageLike) -> Tuple[int, int]:
    """``(height, width)`` of a PIL image or a ``[..., H, W]`` tensor."""
    _, height, width = F.get_dimensions(image)
    return height, width


class Resize:
    """Rescale so the shorter side has a chosen length, bounding the longer side.

    The shorter side becomes ``random.choice(min_size)``; if that would make the
    longer side exceed ``max_size``, the shorter side is reduced to
    ``int(round(max_size * short / long))``. The other side keeps the aspect
    ratio with truncation, matching the benchmark so image sizes (and hence
    feature-map sizes) are the ones its checkpoints saw.
    """

    def __init__(self, min_size: Union[int, Sequence[int]], max_size: Optional[int]) -> None:
        self.min_size = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
        self.max_size = max_size

    def get_size(self, image_hw: Tuple[int, int]) -> Tuple[int, int]:
        """Output ``(height, width)`` for an input of ``(height, width)``."""
        h, w = image_hw
        size = random.choice(self.min_size)
        if self.max_size is not None:
            short, long = float(min(w, h)), float(max(w, h))
            if long / short * size > self.max_size:
                size = int(round(self.max_size * short / long))
        if (w <= h and w == size) or (h <= w and h == size):
            return h, w
        if w < h:
            return int(size * h / w), size
        return size, int(size * w / h)

    def __call__(self, image: ImageLike, target: Target = None) -> Tuple[ImageLike, Target]:
        new_h, new_w = self.get_size(_image_hw(image))
        image = F.resize(image, [new_h, new_w], interpolation=F.InterpolationMode.BILINEAR)
        if target is not None:
            target = target.resize((new_w, new_h))
        return image, target

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(min_size={self.min_size}, max_size={self.max_size})"


class _RandomFlip:
    """Mirror image and boxes with probability ``prob`` along the axis of ``method``.

    Boxes use the BoxList's legacy flip (``x -> w - x - 1``); relation maps are
    untouched since flipping does not change which boxes are related.
    """

    _image_flip = staticmethod(F.hflip)
    _box_flip = FLIP_LEFT_RIGHT

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def __call__(self, image: ImageLike, target: Target = None) -> Tuple[ImageLike, Target]:
        if random.random() < self.prob:
            image = self._image_flip(image)
            if target is not None:
                target = target.transpose(self._box_flip)
        return image, target

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(prob={self.prob})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror image and boxes left-right with probability ``prob``."""


class RandomVerticalFlip(_RandomFlip):
    """Mirror image and boxes top-bottom with probability ``prob``."""

    _image_flip = staticmethod(F.vflip)
    _box_flip = FLIP_TOP_BOTTOM


class ColorJitter:
    """Random brightness/contrast/saturation/hue changes via torchvision.

    With every strength at 0 (the benchmark's setting) this does nothing and
    does not call torchvision at all, so it neither costs time nor draws from
    torch's random generator.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> None:
        self.params = (brightness, contrast, saturation, hue)
        self.color_jitter = (tv_transforms.ColorJitter(brightness, contrast, saturation, hue)
                             if any(self.params) else None)

    def __call__(self, image: ImageLike, target: Target = None) -> Tuple[ImageLike, Target]:
        if self.color_jitter is not None:
            image = self.color_jitter(image)
        return image, target

    def __repr__(self) -> str:
        b, c, s, h = self.params
        return f"{self.__class__.__name__}(brightness={b}, contrast={c}, saturation={s}, hue={h})"


class ToTensor:
    """Convert a PIL image to a ``[C, H, W]`` float tensor in ``[0, 1]``."""

    def __call__(self, image: Image.Image, target: Target = None) -> Tuple[torch.Tensor, Target]:
        return F.to_tensor(image), target

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


class Normalize:
    """Per-channel ``(x - mean) / std``, optionally after RGB -> BGR and x255.

    Caffe2-trained backbones (the benchmark's) expect BGR pixels in ``[0, 255]``,
    hence ``to_bgr255=True`` with means given in BGR order.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_bgr255: bool = True) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.to_bgr255 = to_bgr255

    def __call__(self, image: torch.Tensor, target: Target = None) -> Tuple[torch.Tensor, Target]:
        if self.to_bgr255:
            image = image[[2, 1, 0]] * 255
        return F.normalize(image, mean=self.mean, std=self.std), target

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mean={self.mean}, std={self.std}, to_bgr255={self.to_bgr255})"
