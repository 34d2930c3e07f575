"""OpenCV drawing of one scene graph: the image with its boxes, and the graph beside it.

Left: the image (scaled to a readable height) with the boxes of the top relations, each
in its own colour and labelled ``index:class``. Right: those objects as a layered
node-link diagram (a node's column is the length of the longest relation chain leading
to it, so subjects sit left of their objects), arrows labelled with the predicates.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .records import Triplet, record_triplets

FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_HEIGHT, MAX_HEIGHT = 420, 720
BOXES_WITHOUT_RELATIONS = 10
# BGR colours, distinct on photos and on white.
PALETTE = ((40, 40, 220), (40, 160, 40), (200, 90, 20), (0, 150, 220), (160, 40, 160), (130, 130, 0),
           (30, 100, 180), (90, 90, 90), (220, 60, 120), (0, 190, 150))
Color = Tuple[int, int, int]


def node_layers(nodes: Sequence[int], triplets: Sequence[Triplet]) -> Dict[int, int]:
    """Column of each node: the longest subject -> object chain ending at it (cycles cut at len(nodes) - 1)."""
    layer = {node: 0 for node in nodes}
    for _ in range(len(nodes)):
        changed = False
        for t in triplets:
            wanted = min(layer[t.subject] + 1, len(nodes) - 1)
            if t.subject != t.object and wanted > layer[t.object]:
                layer[t.object] = wanted
                changed = True
        if not changed:
            break
    used = sorted(set(layer.values()))
    return {node: used.index(value) for node, value in layer.items()}


def _text_size(text: str, scale: float) -> Tuple[int, int]:
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, 1)
    return w, h + baseline


def _label(canvas: np.ndarray, text: str, x: int, y: int, color: Color, scale: float) -> None:
    """``text`` in white on a ``color`` box whose top-left corner is (x, y), kept inside the canvas."""
    w, h = _text_size(text, scale)
    x = int(min(max(x, 0), max(canvas.shape[1] - w - 4, 0)))
    y = int(min(max(y, 0), max(canvas.shape[0] - h - 4, 0)))
    cv2.rectangle(canvas, (x, y), (x + w + 4, y + h + 4), color, -1)
    cv2.putText(canvas, text, (x + 2, y + h - 1), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _draw_boxes(image: np.ndarray, boxes: Sequence[Sequence[float]], names: Dict[int, str],
                colors: Dict[int, Color], scale: float) -> None:
    thickness = max(2, int(round(image.shape[0] / 300)))
    for node, name in names.items():
        x1, y1, x2, y2 = (int(round(v * scale)) for v in boxes[node])
        cv2.rectangle(image, (x1, y1), (x2, y2), colors[node], thickness)
        _label(image, name, x1, y1 - _text_size(name, 0.5)[1] - 4, colors[node], 0.5)


def _node_positions(layers: Dict[int, int], width: int, height: int, top: int) -> Dict[int, Tuple[int, int]]:
    columns: Dict[int, List[int]] = {}
    for node, layer in layers.items():
        columns.setdefault(layer, []).append(node)
    positions = {}
    for layer, members in columns.items():
        x = int(width * (layer + 0.5) / len(columns))
        for row, node in enumerate(members):
            positions[node] = (x, int(top + (height - top) * (row + 0.5) / len(members)))
    return positions


def _border_point(center: Tuple[int, int], toward: Tuple[int, int], label_size: Tuple[int, int]
                  ) -> Tuple[int, int]:
    """Where the line from ``center`` to ``toward`` leaves the label box (of ``label_size``) at ``center``."""
    dx, dy = toward[0] - center[0], toward[1] - center[1]
    half_w, half_h = label_size[0] / 2 + 5, label_size[1] / 2 + 5
    t = min(half_w / abs(dx) if dx else np.inf, half_h / abs(dy) if dy else np.inf, 1.0)
    return int(round(center[0] + t * dx)), int(round(center[1] + t * dy))


def _draw_graph(panel: np.ndarray, triplets: Sequence[Triplet], names: Dict[int, str],
                colors: Dict[int, Color]) -> None:
    cv2.putText(panel, f"scene graph: top {len(triplets)} relations", (10, 24), FONT, 0.6, (0, 0, 0), 1,
                cv2.LINE_AA)
    if not triplets:
        return
    positions = _node_positions(node_layers(list(names), triplets), panel.shape[1], panel.shape[0], 36)
    for t in triplets:
        (xs, ys), (xo, yo) = positions[t.subject], positions[t.object]
        if t.subject == t.object:
            cv2.circle(panel, (xs, ys - 18), 14, (120, 120, 120), 1, cv2.LINE_AA)
        else:
            start = _border_point((xs, ys), (xo, yo), _text_size(names[t.subject], 0.5))
            end = _border_point((xo, yo), (xs, ys), _text_size(names[t.object], 0.5))
            length = max(float(np.hypot(end[0] - start[0], end[1] - start[1])), 1.0)
            cv2.arrowedLine(panel, start, end, (120, 120, 120), 1, cv2.LINE_AA, tipLength=min(0.3, 10 / length))
    for t in triplets:
        (xs, ys), (xo, yo) = positions[t.subject], positions[t.object]
        text = f"{t.predicate} {t.score:.2g}"
        w, h = _text_size(text, 0.42)
        mx, my = (xs + xo) // 2 - w // 2, (ys + yo) // 2 - h // 2 - (24 if t.subject == t.object else 0)
        cv2.rectangle(panel, (mx - 2, my - 2), (mx + w + 2, my + h + 2), (255, 255, 255), -1)
        cv2.putText(panel, text, (mx, my + h - 3), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    for node, (x, y) in positions.items():
        w, h = _text_size(names[node], 0.5)
        _label(panel, names[node], x - w // 2 - 2, y - h // 2 - 2, colors[node], 0.5)


def draw_scene_graph(image_bgr: np.ndarray, record: dict, top: int) -> np.ndarray:
    """The drawing of ``record`` (a ``scene_graph_record``) on ``image_bgr``: a BGR uint8 array."""
    triplets = record_triplets(record)[:top]
    nodes = list(dict.fromkeys(i for t in triplets for i in (t.subject, t.object)))
    if not triplets:
        nodes = list(range(min(len(record["boxes"]), BOXES_WITHOUT_RELATIONS)))
    names = {node: f"{node}:{record['label_names'][node]}" for node in nodes}
    colors = {node: PALETTE[k % len(PALETTE)] for k, node in enumerate(nodes)}

    height = int(min(max(image_bgr.shape[0], MIN_HEIGHT), MAX_HEIGHT))
    scale = height / image_bgr.shape[0]
    image = cv2.resize(image_bgr, (max(int(round(image_bgr.shape[1] * scale)), 1), height),
                       interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    _draw_boxes(image, record["boxes"], names, colors, scale)
    panel = np.full((height, max(height, 480), 3), 255, dtype=np.uint8)
    _draw_graph(panel, triplets, names, colors)
    return np.hstack([image, panel])
