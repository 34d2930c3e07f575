"""Draw predicted scene graphs saved by a relation test run (TEST.SAVE_PREDICTIONS True).

For each chosen image, one PNG with the image, its predicted boxes and the top
relations, next to the scene graph drawn as a graph (objects on a circle, arrows
labelled with predicates).

    python tools/visualize_scene_graph.py --inference-dir OUTPUT_DIR/inference/<dataset> \
        --dict-file datasets/vg/VG-SGG-dicts-with-attri.json --out vis/ [--images 0 1 2] [--top 10]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from maskrcnn_benchmark.data.datasets.visual_genome import load_info  # noqa: E402

logger = logging.getLogger("visualize_scene_graph")


def top_relations(prediction: Dict[str, torch.Tensor], top: int) -> List[tuple]:
    """``(subject index, object index, predicate id, score)`` of the best ``top`` relations."""
    pairs = prediction["rel_pairs"][:top].tolist()
    labels = prediction["rel_labels"][:top].tolist()
    scores = prediction["rel_scores"][:top].tolist()
    return [(s, o, p, score) for (s, o), p, score in zip(pairs, labels, scores)]


def draw(image_file: str, prediction: Dict[str, torch.Tensor], relations: Sequence[tuple],
         classes: Sequence[str], predicates: Sequence[str], out_file: str) -> None:
    """Image with the boxes used by ``relations`` (left) and their graph (right), saved as PNG."""
    used = sorted({i for s, o, _, _ in relations for i in (s, o)})
    names = {i: f"{i}:{classes[int(prediction['labels'][i])]}" for i in used}
    fig, (ax_img, ax_graph) = plt.subplots(1, 2, figsize=(14, 6))
    ax_img.imshow(Image.open(image_file).convert("RGB"))
    for i in used:
        x1, y1, x2, y2 = prediction["boxes"][i].tolist()
        ax_img.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", linewidth=2))
        ax_img.text(x1, y1, names[i], color="black", fontsize=8, backgroundcolor="yellow")
    ax_img.set_title("\n".join(f"{names[s]} {predicates[p]} {names[o]} ({score:.2f})"
                               for s, o, p, score in relations[:6]), fontsize=8)
    ax_img.axis("off")

    angle = {node: 2 * math.pi * k / max(len(used), 1) for k, node in enumerate(used)}
    position = {node: (math.cos(a), math.sin(a)) for node, a in angle.items()}
    for s, o, p, _ in relations:
        (xs, ys), (xo, yo) = position[s], position[o]
        ax_graph.annotate("", xy=(xo, yo), xytext=(xs, ys),
                          arrowprops=dict(arrowstyle="->", color="tab:blue", shrinkA=18, shrinkB=18))
        ax_graph.text((xs + xo) / 2, (ys + yo) / 2, predicates[p], fontsize=8, color="tab:blue", ha="center")
    for node, (x, y) in position.items():
        ax_graph.text(x, y, names[node], ha="center", va="center", fontsize=9,
                      bbox=dict(boxstyle="round", facecolor="lightyellow"))
    ax_graph.set_xlim(-1.4, 1.4)
    ax_graph.set_ylim(-1.4, 1.4)
    ax_graph.set_title("scene graph")
    ax_graph.axis("off")
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inference-dir", required=True, help="folder with predictions.pth and visual_info.json")
    parser.add_argument("--dict-file", required=True, help="the dataset's VG-SGG-dicts-with-attri.json")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--images", type=int, nargs="*", default=None,
                        help="positions in visual_info.json (default: the first 5)")
    parser.add_argument("--top", type=int, default=10, help="relations drawn per image")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    for name in ("predictions.pth", "visual_info.json"):
        if not os.path.isfile(os.path.join(args.inference_dir, name)):
            parser.error(f"{name} not found in {args.inference_dir}; run relation_test_net.py with "
                         f"TEST.SAVE_PREDICTIONS True")
    predictions = torch.load(os.path.join(args.inference_dir, "predictions.pth"), weights_only=True)
    with open(os.path.join(args.inference_dir, "visual_info.json")) as f:
        visual_info = json.load(f)
    classes, predicates, _ = load_info(args.dict_file)
    os.makedirs(args.out, exist_ok=True)
    for position in args.images if args.images is not None else range(min(5, len(visual_info))):
        entry = visual_info[position]
        prediction = predictions[entry["prediction"]]
        out_file = os.path.join(args.out, f"scene_graph_{entry['image_index']:06d}.png")
        draw(entry["img_file"], prediction, top_relations(prediction, args.top), classes, predicates, out_file)
        logger.info("Wrote %s", out_file)


if __name__ == "__main__":
    main()
