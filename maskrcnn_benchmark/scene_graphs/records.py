"""One image's scene graph as a JSON record, with the evaluator's prediction field names.

``boxes``, ``labels``, ``scores``, ``rel_pairs``, ``rel_labels`` and ``rel_scores`` are the
fields of an entry of ``predictions.pth`` (``compact_prediction``), in pixels of the original
image; ``img_file`` is as in ``visual_info.json``. Added for readers without the vocabulary:
``label_names`` and ``rel_label_names``, and ``triplet_scores`` (predicate x subject x object
score, the order of the relations).
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import torch

from maskrcnn_benchmark.engine.relation_inference import compact_prediction
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _rounded(values: torch.Tensor, digits: int) -> List[Any]:
    """Nested lists of ``values`` rounded to ``digits`` (JSON files stay small and readable)."""
    return torch.round(values.double(), decimals=digits).tolist()


def triplet_scores(prediction: BoxList, top: int) -> torch.Tensor:
    """The scores the relations are sorted by: predicate probability times both objects' scores."""
    pairs = prediction.get_field("rel_pair_idxs")[:top].long()
    labels = prediction.get_field("pred_rel_labels")[:top].long()
    rel_probs = prediction.get_field("pred_rel_scores")[:top]
    obj_scores = prediction.get_field("pred_scores")
    predicate = rel_probs.gather(1, labels[:, None]).squeeze(1) if len(labels) else rel_probs.new_zeros(0)
    return predicate * obj_scores[pairs[:, 0]] * obj_scores[pairs[:, 1]]


def scene_graph_record(prediction: BoxList, img_file: str, name: str, image_size: Tuple[int, int], mode: str,
                       obj_classes: Sequence[str], rel_classes: Sequence[str], top: int) -> Dict[str, Any]:
    """The JSON record of one image; ``prediction`` is the model's output for it (any size),
    ``image_size`` the original ``(width, height)``, ``top`` the relations kept."""
    prediction = prediction.resize(image_size)
    compact = compact_prediction(prediction, top)
    labels = compact["labels"].tolist()
    rel_labels = compact["rel_labels"].tolist()
    return {
        "img_file": img_file,
        "image": name,
        "width": int(image_size[0]),
        "height": int(image_size[1]),
        "mode": mode,
        "boxes": _rounded(compact["boxes"], 2),
        "labels": labels,
        "label_names": [obj_classes[i] for i in labels],
        "scores": _rounded(compact["scores"], 5),
        "rel_pairs": compact["rel_pairs"].tolist(),
        "rel_labels": rel_labels,
        "rel_label_names": [rel_classes[i] for i in rel_labels],
        "rel_scores": _rounded(compact["rel_scores"], 5),
        "triplet_scores": _rounded(triplet_scores(prediction, top), 6),
    }


class Triplet(NamedTuple):
    """One relation of a record, by box index and by name."""

    subject: int
    subject_name: str
    predicate: str
    object: int
    object_name: str
    score: float


def record_triplets(record: Dict[str, Any]) -> List[Triplet]:
    """The relations of ``record`` in its order (best first)."""
    names = record["label_names"]
    return [Triplet(s, names[s], predicate, o, names[o], score)
            for (s, o), predicate, score in zip(record["rel_pairs"], record["rel_label_names"],
                                                record["triplet_scores"])]
