"""Scene geometry: image sizes, one grid cell per relation or distractor, and pixel boxes inside cells.

Relations never share a cell, so the geometry of one pair is not disturbed by
another. Box corners are snapped to a pixel grid (``step``) on which the VG150
1024-scale encoding is exact, and every box stays inside [0, width-1] x [0, height-1]
so that the benchmark's legacy clipping never changes it.
"""
import math
from typing import List, Tuple

import numpy as np

Box = Tuple[int, int, int, int]

CELL_MARGIN_PX = 3
PAIR_FILL_RANGE = (0.75, 1.0)
DISTRACTOR_SIZE_RANGE = (0.3, 0.8)


def sample_image_size(rng: np.random.Generator, long_side: int, aspect_ratios: Tuple[float, ...],
                      step: int) -> Tuple[int, int]:
    """(width, height): long side fixed, short side from ``aspect_ratios``, orientation at random."""
    ratio = aspect_ratios[rng.integers(len(aspect_ratios))]
    short_side = max(step, int(round(long_side * ratio / step)) * step)
    if rng.random() < 0.5:
        return long_side, short_side
    return short_side, long_side


def grid_shape(width: int, height: int, num_cells: int) -> Tuple[int, int]:
    """(rows, cols) holding ``num_cells`` whose smallest cell side is largest (fewest spare cells on ties)."""
    best: Tuple[float, int, int, int] = (-1.0, 0, 0, 0)
    for cols in range(1, num_cells + 1):
        rows = math.ceil(num_cells / cols)
        score = (min(width / cols, height / rows), -(rows * cols - num_cells), rows, cols)
        best = max(best, score)
    return best[2], best[3]


def sample_cells(rng: np.random.Generator, width: int, height: int, num_cells: int) -> List[Box]:
    """``num_cells`` disjoint cells (x1, y1, x2, y2) at random grid positions, margins removed."""
    rows, cols = grid_shape(width, height, num_cells)
    x_edges = np.linspace(0, width - 1, cols + 1).round().astype(int)
    y_edges = np.linspace(0, height - 1, rows + 1).round().astype(int)
    positions = rng.permutation(rows * cols)[:num_cells]
    cells = []
    for position in positions:
        row, col = divmod(int(position), cols)
        cells.append((int(x_edges[col]) + CELL_MARGIN_PX, int(y_edges[row]) + CELL_MARGIN_PX,
                      int(x_edges[col + 1]) - CELL_MARGIN_PX, int(y_edges[row + 1]) - CELL_MARGIN_PX))
    return cells


def snap_box(box: np.ndarray, cell: Box, step: int, min_size: int) -> Box:
    """Round a float box to the ``step`` grid inside ``cell``, at least ``min_size`` wide and high."""
    low = np.ceil(np.array(cell[:2]) / step) * step
    high = np.floor(np.array(cell[2:]) / step) * step
    first = np.clip(np.round(box[:2] / step) * step, low, high - min_size)
    second = np.clip(np.round(box[2:] / step) * step, first + min_size, high)
    return int(first[0]), int(first[1]), int(second[0]), int(second[1])


def fit_pair(rng: np.random.Generator, cell: Box, layout_ranges: np.ndarray, step: int,
             min_size: int) -> Tuple[Box, Box]:
    """Sample a (subject, object) layout from its ranges, mirror it at random and fit it into ``cell``.

    ``layout_ranges`` has shape (2, 4, 2): [subject, object] x (x1, y1, x2, y2) x [lo, hi]
    in a unit square; edges are sorted after sampling, since widened (overlapping)
    ranges may draw x2 < x1. The pair is scaled uniformly, so relative geometry is kept.
    """
    edges = rng.uniform(layout_ranges[..., 0], layout_ranges[..., 1])
    frame = np.concatenate([np.minimum(edges[:, :2], edges[:, 2:]), np.maximum(edges[:, :2], edges[:, 2:])], axis=1)
    if rng.random() < 0.5:
        frame[:, [0, 2]] = 1.0 - frame[:, [2, 0]]
    union_low = frame[:, :2].min(axis=0)
    union_size = frame[:, 2:].max(axis=0) - union_low
    cell_size = np.array([cell[2] - cell[0], cell[3] - cell[1]], dtype=np.float64)
    scale = rng.uniform(*PAIR_FILL_RANGE) * np.min(cell_size / union_size)
    offset = np.array(cell[:2]) + rng.uniform(0.0, 1.0, 2) * (cell_size - union_size * scale)
    pixels = (frame - np.tile(union_low, 2)) * scale + np.tile(offset, 2)
    return snap_box(pixels[0], cell, step, min_size), snap_box(pixels[1], cell, step, min_size)


def place_distractor(rng: np.random.Generator, cell: Box, step: int, min_size: int) -> Box:
    """A box of random size and position inside ``cell``."""
    cell_size = np.array([cell[2] - cell[0], cell[3] - cell[1]], dtype=np.float64)
    size = rng.uniform(*DISTRACTOR_SIZE_RANGE, 2) * cell_size
    corner = np.array(cell[:2]) + rng.uniform(0.0, 1.0, 2) * (cell_size - size)
    return snap_box(np.concatenate([corner, corner + size]), cell, step, min_size)
