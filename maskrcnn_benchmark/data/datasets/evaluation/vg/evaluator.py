"""``SGGEvaluator``: the streaming scene-graph evaluator, and ``build_sgg_evaluator`` from the config."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from maskrcnn_benchmark.config.modes import mode_from_config
from maskrcnn_benchmark.data.datasets.visual_genome import load_label_counts
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy
from maskrcnn_benchmark.utils.comm import get_rank, get_world_size

from .accumulator import RelationSums
from .coco_boxes import BoxCollector
from .derived import derived_metrics, frequency_groups
from .hierarchy_metrics import HierarchyEvaluator
from .image_metrics import KS, ZeroShotTriplets, evaluate_image
from .inputs import MODES, ImageInputs, apply_mode, inputs_from_boxlists
from .report import log_lines, write_metrics_json

logger = logging.getLogger(__name__)

GRAPH_CONSTRAINED = ("R@K", "mR@K", "zR@K", "A@K")
NO_GRAPH_CONSTRAINT = ("ngR@K", "ng-mR@K", "ng-zR@K")


class SGGEvaluator:
    """Relation recalls (R, ng-R, mR, ng-mR, zR, ng-zR, A @ 20/50/100) and box mAP, image by image.

    ``add`` reduces each image to running sums at once (and keeps its boxes as
    small arrays for the COCO evaluation); ``all_reduce`` combines processes;
    ``result`` / ``log_lines`` / ``write_json`` report (call them on rank 0).

    Args:
        mode: "predcls", "sgcls" or "sgdet".
        num_predicates: predicate classes without background (50 on VG150).
        predicate_names: names of predicates 1..num_predicates (for the log).
        iou_threshold: box IoU needed for a match (TEST.RELATION.IOU_THRESHOLD).
        multiple_preds: recorded only; like the benchmark, the graph-constrained
            metrics always use one predicate per pair (ng-* are the multi-predicate ones).
        zeroshot_triplets: (Z, 3) rows (subject label, object label, predicate),
            or None for no zero-shot metrics.
        train_predicate_counts: training count per predicate id (entry 0 =
            background) for head/body/tail mR, or None.
        legacy_coco_ann_ids: number COCO GT annotations from 0 as the benchmark
            (see ``coco_boxes``).
        require_overlap: recorded only (it decides the candidate pairs upstream).
        coco_matcher: "vectorised" (default) or "pycocotools" (its own, slow
            ``COCOeval.evaluate``; same numbers).
        keep_per_image: also keep each evaluated image's recalls (for checks).
        hierarchy: fine -> coarse predicate links; adds the hierarchy metrics
            (``hierarchy_metrics``) when given.
        graded_weights: gHR@K's (coarsen, sibling) credits.
        hierarchy_source: where the hierarchy was read from (recorded in the result).
    """

    def __init__(self, mode: str, num_predicates: int, predicate_names: Optional[Sequence[str]] = None,
                 iou_threshold: float = 0.5, multiple_preds: bool = False,
                 zeroshot_triplets: Optional[np.ndarray] = None,
                 train_predicate_counts: Optional[Sequence[int]] = None, legacy_coco_ann_ids: bool = False,
                 require_overlap: bool = False, keep_per_image: bool = False,
                 coco_matcher: str = "vectorised", hierarchy: Optional[PredicateHierarchy] = None,
                 graded_weights: Sequence[float] = (0.5, 0.5), hierarchy_source: Optional[str] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode should be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.num_predicates = num_predicates
        self.predicate_names = list(predicate_names) if predicate_names is not None else [
            f"pred{p:02d}" for p in range(1, num_predicates + 1)]
        if len(self.predicate_names) != num_predicates:
            raise ValueError(f"{len(self.predicate_names)} predicate names for {num_predicates} predicates")
        self.iou_threshold = float(iou_threshold)
        self.multiple_preds = bool(multiple_preds)
        if self.multiple_preds:
            logger.warning("MULTIPLE_PREDS has no effect on the evaluation, as in the benchmark")
        self.zeroshot = None if zeroshot_triplets is None else ZeroShotTriplets(zeroshot_triplets)
        self.groups = (None if train_predicate_counts is None
                       else frequency_groups(train_predicate_counts, num_predicates))
        self.legacy_coco_ann_ids = bool(legacy_coco_ann_ids)
        self.require_overlap = bool(require_overlap)
        self.coco_matcher = coco_matcher
        self.sums = RelationSums(num_predicates)
        self.boxes = BoxCollector()
        if hierarchy is not None and hierarchy.num_predicates != num_predicates:
            raise ValueError(f"the predicate hierarchy has {hierarchy.num_predicates} predicates, "
                             f"the evaluation {num_predicates}")
        if len(graded_weights) != 2:
            raise ValueError(f"graded_weights should be (coarsen, sibling), got {tuple(graded_weights)}")
        self.hierarchy = None if hierarchy is None else HierarchyEvaluator(
            hierarchy, *graded_weights, source=hierarchy_source)
        self.per_image: Optional[List[Dict[str, Any]]] = [] if keep_per_image else None
        self._detection: Optional[Dict[str, Any]] = None
        self._warned_box_count = False

    # ------------------------------------------------------------------ input
    def add(self, groundtruth: BoxList, prediction: BoxList, image_id: Optional[int] = None) -> None:
        """Evaluate one image. ``image_id`` (the dataset index) orders the COCO images and
        numbers the annotations as the benchmark does; it defaults to the number of
        images added so far, which is only right in a single process."""
        self.add_inputs(inputs_from_boxlists(groundtruth, prediction), image_id)

    def add_inputs(self, inputs: ImageInputs, image_id: Optional[int] = None) -> None:
        """``add`` for an image already read into numpy arrays."""
        image_id = self.sums.count("images_added") if image_id is None else int(image_id)
        self.sums.increment("images_added")
        self._detection = None
        self.add_boxes(inputs, image_id)
        self.add_relations(inputs, image_id)

    def add_boxes(self, inputs: ImageInputs, image_id: int) -> None:
        """Keep the image's boxes for the detection mAP (PredCls: GT labels, score 1)."""
        labels, scores = inputs.pred_labels, inputs.pred_scores
        if self.mode == "predcls":
            if len(inputs.pred_boxes) != len(inputs.gt_labels):
                raise ValueError(f"PredCls prediction has {len(inputs.pred_boxes)} boxes for "
                                 f"{len(inputs.gt_labels)} GT boxes")
            labels, scores = inputs.gt_labels, np.ones(len(inputs.gt_labels), dtype=np.float32)
        self.boxes.add(image_id, inputs.gt_boxes, inputs.gt_labels, inputs.pred_boxes, scores, labels)

    def add_relations(self, inputs: ImageInputs, image_id: int) -> None:
        """Add the image's relation metrics to the running sums (skipped: no GT relation or no pair)."""
        if len(inputs.gt_rels) == 0:
            self.sums.increment("skipped_no_gt_relation")
            return
        if len(inputs.rel_pairs) == 0:
            self.sums.increment("skipped_no_pair")
            return
        if inputs.rel_scores.shape != (len(inputs.rel_pairs), self.num_predicates + 1):
            raise ValueError(f"pred_rel_scores should be ({len(inputs.rel_pairs)}, {self.num_predicates + 1}) "
                             f"(background column first), got {inputs.rel_scores.shape}")
        if self.mode == "sgcls" and len(inputs.pred_boxes) != len(inputs.gt_boxes) and not self._warned_box_count:
            logger.warning("SGCls prediction with %d boxes for %d GT boxes (image %d)",
                           len(inputs.pred_boxes), len(inputs.gt_boxes), image_id)
            self._warned_box_count = True
        mode_inputs = apply_mode(inputs, self.mode)
        result = evaluate_image(mode_inputs, self.num_predicates, self.iou_threshold,
                                self.zeroshot, pair_accuracy=self.mode != "sgdet")
        self.sums.add(result)
        if self.hierarchy is not None:
            self.hierarchy.add_image(mode_inputs, self.iou_threshold)
        if self.per_image is not None:
            self.per_image.append(dict(image=image_id, **result.as_record()))

    # ------------------------------------------------------------ processes
    def all_reduce(self) -> None:
        """Sum the relation sums over all processes and gather boxes (and per-image records) on rank 0."""
        if get_world_size() == 1:
            return
        self.sums.all_reduce()
        if self.hierarchy is not None:
            self.hierarchy.all_reduce()
        self.boxes.gather()
        if self.per_image is not None:
            gathered = [None] * get_world_size() if get_rank() == 0 else None
            torch.distributed.gather_object(self.per_image, gathered, dst=0)
            records = [r for part in gathered for r in part] if gathered is not None else []
            self.per_image = sorted(records, key=lambda r: r["image"])
        self._detection = None

    # ----------------------------------------------------------------- output
    def detection_result(self) -> Dict[str, Any]:
        """COCO box metrics of the collected images (computed once, then cached)."""
        if self._detection is None:
            self._detection = self.boxes.evaluate(legacy_ann_ids=self.legacy_coco_ann_ids, matcher=self.coco_matcher)
        return self._detection

    def protocol(self) -> Dict[str, Any]:
        return {
            "mode": self.mode,
            "graph_constraint": {"with": list(GRAPH_CONSTRAINED), "without": list(NO_GRAPH_CONSTRAINT)},
            "iou_threshold": self.iou_threshold,
            "multiple_preds": self.multiple_preds,
            "require_overlap": self.require_overlap,
            "coco_legacy_ann_ids": self.legacy_coco_ann_ids,
            "ks": list(KS),
            "num_predicates": self.num_predicates,
            "zeroshot_triplets": None if self.zeroshot is None else self.zeroshot.size,
        }

    def result(self) -> Dict[str, Any]:
        """Every number, keyed like the golden files (``metrics.R@K`` ...), plus the protocol flags."""
        sums = self.sums.metrics()
        metrics = dict(sums["metrics"])
        if self.zeroshot is None:
            metrics.pop("zR@K")
            metrics.pop("ng-zR@K")
        metrics.update(derived_metrics(metrics, sums["per_predicate"]["mR"], self.groups))
        if self.hierarchy is not None:
            metrics.update(self.hierarchy.metrics())
        counts = sums["counts"]
        out = {
            "protocol": self.protocol(),
            "num_images": counts["images_added"],
            "num_images_evaluated": counts["images_evaluated"],
            "num_images_zeroshot": counts["images_zeroshot"],
            "num_images_skipped": {"no_gt_relation": counts["skipped_no_gt_relation"],
                                   "no_candidate_pair": counts["skipped_no_pair"]},
            "metrics": metrics,
            "per_predicate": dict(sums["per_predicate"], names=self.predicate_names),
            "pair_accuracy_detail": sums["pair_accuracy_detail"],
            "head_body_tail": self.groups,
            "detection": self.detection_result() if len(self.boxes) else None,
        }
        if self.hierarchy is not None:
            out["hierarchy"] = self.hierarchy.detail()
        if self.per_image is not None:
            out["per_image"] = self.per_image
        return out

    def log_lines(self) -> List[str]:
        """The benchmark's "SGG eval: ..." lines (plus Mean, F and head/body/tail rows)."""
        return log_lines(self.result(), self.predicate_names)

    def write_json(self, path: str) -> None:
        """Write ``result()`` to ``path`` (metrics.json)."""
        write_metrics_json(self.result(), path)


def load_zeroshot_triplets(path: str) -> np.ndarray:
    """(Z, 3) int64 (subject label, object label, predicate) from a torch file
    (the benchmark's ``zeroshot_triplet.pytorch``) or a ``.npy`` file."""
    if path.endswith(".npy"):
        triplets = np.load(path)
    else:
        triplets = torch.load(path, map_location="cpu", weights_only=True)
        triplets = triplets.numpy() if isinstance(triplets, torch.Tensor) else np.asarray(triplets)
    return np.asarray(triplets, dtype=np.int64).reshape(-1, 3)


def build_sgg_evaluator(cfg, dataset, keep_per_image: bool = False,
                        train_predicate_counts: Optional[Sequence[int]] = None) -> SGGEvaluator:
    """The evaluator for ``dataset`` under ``cfg``: mode, IoU threshold, MULTIPLE_PREDS,
    REQUIRE_OVERLAP, the zero-shot file (TEST.RELATION.ZEROSHOT_TRIPLETS), COCO ann-id
    numbering (TEST.COCO_LEGACY_ANN_IDS), the dataset's predicate names, and the
    hierarchy metrics when TEST.RELATION.PREDICATE_TREE names a tree file with parent
    links (checked against the dataset's predicates; gHR's weights from
    TEST.RELATION.GRADED_HR_WEIGHTS).

    head/body/tail split the predicates by ``train_predicate_counts`` (entry 0 =
    background; the relation tools pass the training split's counts); without them,
    by the ``predicate_count`` of the dataset's dictionary file (of the dataset a
    subset wraps); without either they are left out."""
    names = list(dataset.ind_to_predicates[1:])
    counts = train_predicate_counts
    if counts is None:
        dict_file = (getattr(dataset, "dict_file", None)
                     or getattr(getattr(dataset, "dataset", None), "dict_file", None))
        counts = load_label_counts(dict_file)[1] if dict_file and os.path.isfile(dict_file) else None
    zs_path = cfg.TEST.RELATION.ZEROSHOT_TRIPLETS
    tree_path = cfg.TEST.RELATION.PREDICATE_TREE
    hierarchy = PredicateHierarchy.from_json(tree_path, dataset.ind_to_predicates) if tree_path else None
    return SGGEvaluator(
        mode=mode_from_config(cfg),
        num_predicates=len(names),
        predicate_names=names,
        iou_threshold=cfg.TEST.RELATION.IOU_THRESHOLD,
        multiple_preds=cfg.TEST.RELATION.MULTIPLE_PREDS,
        zeroshot_triplets=load_zeroshot_triplets(zs_path) if zs_path else None,
        train_predicate_counts=counts,
        legacy_coco_ann_ids=cfg.TEST.COCO_LEGACY_ANN_IDS,
        require_overlap=cfg.TEST.RELATION.REQUIRE_OVERLAP,
        keep_per_image=keep_per_image,
        hierarchy=hierarchy,
        graded_weights=tuple(cfg.TEST.RELATION.GRADED_HR_WEIGHTS),
        hierarchy_source=tree_path or None,
    )
