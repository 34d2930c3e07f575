"""Drawing objects into images: per-class shape, colour and texture on a mildly noisy background.

Shapes are rasterised conservatively (a pixel is painted when any part of it lies in
the shape), so every drawn object touches all four sides of its box: the box is exact.
"""
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from .world import ObjectClass, colour_rgb

BACKGROUND_RANGE = (80, 180)
COLOUR_JITTER = 12
Box = Tuple[int, int, int, int]


def _pixel_distance_to_centre(size: int) -> np.ndarray:
    """Per pixel along one axis: distance from the box centre (0.5) to the pixel's extent, in box units."""
    start = np.arange(size, dtype=np.float32) / size
    end = start + 1.0 / size
    return np.maximum(0.0, np.maximum(start - 0.5, 0.5 - end))


def shape_mask(shape: str, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of ``shape`` filling a box of that size."""
    du = _pixel_distance_to_centre(width)[None, :]
    dv = _pixel_distance_to_centre(height)[:, None]
    top = (np.arange(height, dtype=np.float32) / height)[:, None]
    bottom = top + 1.0 / height
    if shape == "rect":
        return np.ones((height, width), dtype=bool)
    if shape == "ellipse":
        return (du / 0.5) ** 2 + (dv / 0.5) ** 2 <= 1.0
    if shape == "triangle":
        return du <= 0.5 * bottom
    if shape == "inv_triangle":
        return du <= 0.5 * (1.0 - top)
    if shape == "diamond":
        return du + dv <= 0.5
    if shape == "cross":
        return (du <= 1.0 / 6.0) | (dv <= 1.0 / 6.0)
    raise ValueError(f"unknown shape {shape!r}")


def texture_mask(texture: str, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of the pixels drawn in the secondary colour."""
    period = int(np.clip(min(height, width) // 4, 4, 10))
    half = period // 2
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    if texture == "plain":
        return np.zeros((height, width), dtype=bool)
    if texture == "hstripes":
        return np.broadcast_to((y // half) % 2 == 1, (height, width))
    if texture == "vstripes":
        return np.broadcast_to((x // half) % 2 == 1, (height, width))
    if texture == "checker":
        return (x // half + y // half) % 2 == 1
    if texture == "diagonal":
        return ((x + y) // half) % 2 == 1
    if texture == "dots":
        return ((x % period) - half) ** 2 + ((y % period) - half) ** 2 <= (period / 4.0) ** 2
    raise ValueError(f"unknown texture {texture!r}")


def secondary_colour(rgb: np.ndarray) -> np.ndarray:
    """Texture colour: the primary darkened if it is light, lightened if it is dark."""
    if rgb.mean() > 110:
        return rgb * 0.45
    return rgb + 0.55 * (255.0 - rgb)


def draw_object(canvas: np.ndarray, box: Box, style: ObjectClass, rng: np.random.Generator) -> None:
    """Paint one object into ``canvas`` (float32 HxWx3) so that it exactly fills ``box``."""
    x1, y1, x2, y2 = box
    height, width = y2 - y1, x2 - x1
    primary = np.clip(np.array(colour_rgb(style.colour), dtype=np.float32)
                      + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
    pattern = texture_mask(style.texture, height, width)
    colours = np.where(pattern[..., None], secondary_colour(primary), primary)
    inside = shape_mask(style.shape, height, width)
    region = canvas[y1:y2, x1:x2]
    region[inside] = colours[inside]


def render_scene(rng: np.random.Generator, width: int, height: int, boxes: Sequence[Box],
                 styles: Sequence[ObjectClass], paint_order: Sequence[int], noise_std: float) -> np.ndarray:
    """Draw the objects in ``paint_order`` over a random flat background, add pixel noise; uint8 HxWx3."""
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[...] = rng.uniform(*BACKGROUND_RANGE, 3)
    for index in paint_order:
        draw_object(canvas, boxes[index], styles[index], rng)
    if noise_std > 0:
        canvas += rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(noise_std)
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def save_jpeg(path: str, image: np.ndarray, quality: int) -> None:
    """Write an RGB uint8 image as JPEG."""
    Image.fromarray(image).save(path, format="JPEG", quality=quality)
