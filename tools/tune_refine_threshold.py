"""Choose the hierarchical loss's D3 refine threshold tau on the validation split.

    python tools/tune_refine_threshold.py --config-file CONFIG [--test] [KEY VALUE ...]

The config is the training run's (MODEL.ROI_RELATION_HEAD.FRAMEWORKS with
"HierarchicalLoss", HIER.*). The model loads as in tools/relation_test_net.py
(OUTPUT_DIR/last_checkpoint, else MODEL.WEIGHT) and runs once over the first set of
DATASETS.VAL; every image's relation logits are kept and re-scored for each tau of
HIER.TUNE_GRID, each scoring evaluated by the benchmark's evaluator (set
TEST.RELATION.PREDICATE_TREE for HR@50). The best tau for HIER.TUNE_METRIC (HR@50,
F@50 or Mean@50 on the annotated val split; the first on ties) goes with every tau's
numbers to OUTPUT_DIR/inference/<val set>/refine_threshold.json and to stdout. With
--test the model is then tested with that tau on DATASETS.TEST, as tools/relation_test_net.py
does with HIER.REFINE_THRESHOLD set to it (what tools/framework_study.py runs after training). One process.
"""
import json
import os
from typing import Any, Dict, List, Sequence, Tuple

import torch

import hml_patch  # noqa: F401  (HML config keys and framework, for models trained with HML)
import training_frameworks  # noqa: F401  (the other training frameworks)
from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.data.build import get_dataset_statistics
from maskrcnn_benchmark.data.datasets.evaluation.vg.evaluator import build_sgg_evaluator
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.framework import prepare_for_testing
from maskrcnn_benchmark.engine.inference_loop import run_inference
from maskrcnn_benchmark.engine.relation_train import build_relation_model, evaluate_relation_model
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer, unwrap_model
from training_frameworks.hierarchical_loss import HierarchicalScores
from training_frameworks.hierarchical_loss.config import TUNE_METRICS

REPORTED = ("R@K", "mR@K", "Mean@K", "F@K", "HR@K")


class RecordingPostProcessor:
    """Calls the relation post-processor and keeps a CPU copy of each call's inputs, to re-score later."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: List[Tuple[Any, ...]] = []

    def __call__(self, rel_logits, obj_logits, rel_pair_idxs, proposals):
        self.calls.append(([t.cpu() for t in rel_logits], [t.cpu() for t in obj_logits],
                           [t.cpu() for t in rel_pair_idxs], [p.to("cpu") for p in proposals]))
        return self.inner(rel_logits, obj_logits, rel_pair_idxs, proposals)


def evaluate(cfg, dataset, batches: Sequence[Tuple[Sequence[int], Tuple[Any, ...]]], post_processor: Any,
             device: torch.device, train_counts: List[float]) -> Dict[str, Any]:
    """The evaluator's result for the recorded ``(image ids, post-processor inputs)`` batches as scored now."""
    evaluator = build_sgg_evaluator(cfg, dataset, train_predicate_counts=train_counts)
    for image_ids, (rel_logits, obj_logits, pairs, proposals) in batches:
        outputs = post_processor([t.to(device) for t in rel_logits], [t.to(device) for t in obj_logits],
                                 [t.to(device) for t in pairs], [p.to(device) for p in proposals])
        for index, prediction in zip(image_ids, outputs):
            groundtruth = dataset.get_groundtruth(index, evaluation=True)
            evaluator.add(groundtruth, prediction.to("cpu").resize(groundtruth.size), image_id=index)
    evaluator.all_reduce()
    return evaluator.result()


def at_50(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """R@50, mR@50, Mean@50, F@50 and HR@50 (None when the evaluator did not compute it)."""
    return {key.replace("@K", "@50"): (metrics[key]["50"] if metrics.get(key) else None) for key in REPORTED}


def main() -> None:
    parser = default_argument_parser("Tune the hierarchical loss's refine threshold on DATASETS.VAL")
    parser.add_argument("--test", action="store_true", help="then test DATASETS.TEST with the chosen tau")
    args = parser.parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    cfg = ctx.cfg
    if cfg.HIER.TUNE_METRIC not in TUNE_METRICS:
        raise ValueError(f"HIER.TUNE_METRIC should be one of {TUNE_METRICS}, got {cfg.HIER.TUNE_METRIC!r}")
    if not cfg.DATASETS.VAL:
        raise ValueError("DATASETS.VAL is empty: the threshold is chosen on the validation split")
    model = build_relation_model(cfg, ctx)
    prepare_for_testing(cfg, model)
    DetectronCheckpointer(cfg, model, save_dir=cfg.OUTPUT_DIR, logger=ctx.logger).load(cfg.MODEL.WEIGHT)
    head = unwrap_model(model).roi_heads.relation
    scorer = head.post_processor.relation_scores
    if not isinstance(scorer, HierarchicalScores):
        raise ValueError("the config does not select the HierarchicalLoss framework (MODEL.ROI_RELATION_HEAD."
                         "FRAMEWORKS), whose refine threshold this tool tunes")

    name = cfg.DATASETS.VAL[0]
    loader = make_data_loader(cfg, "val", False)[0]
    recorder = RecordingPostProcessor(head.post_processor)
    head.post_processor = recorder
    batches: List[Tuple[Sequence[int], Tuple[Any, ...]]] = []
    run_inference(model, loader, ctx.device, lambda ids, _: batches.append((list(ids), recorder.calls[-1])),
                  desc=f"val {name}", logger=ctx.logger)
    head.post_processor = recorder.inner

    train_counts = torch.as_tensor(get_dataset_statistics(cfg)["fg_matrix"]).sum(dim=(0, 1)).tolist()
    metric = cfg.HIER.TUNE_METRIC
    rows = []
    with torch.no_grad():
        for tau in cfg.HIER.TUNE_GRID:
            scorer.tau = float(tau)
            numbers = at_50(evaluate(cfg, loader.dataset, batches, head.post_processor, ctx.device,
                                     train_counts)["metrics"])
            if numbers[metric] is None:
                raise ValueError(f"the evaluator gave no {metric}; set TEST.RELATION.PREDICATE_TREE for HR@50")
            rows.append({"tau": float(tau), **numbers})
            ctx.logger.info("tau %.3f: %s", tau, numbers)
    best = max(rows, key=lambda row: row[metric])  # max keeps the first of equal values
    report = {"dataset": name, "metric": metric, "best_tau": best["tau"], "best": best, "grid": rows}
    folder = os.path.join(cfg.OUTPUT_DIR, "inference", name)
    os.makedirs(folder, exist_ok=True)
    with atomic_path(os.path.join(folder, "refine_threshold.json")) as tmp, open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({"best_tau": best["tau"], "metric": metric, "value": best[metric], "dataset": name}))
    if args.test:
        scorer.tau = best["tau"]
        cfg.defrost()
        cfg.HIER.REFINE_THRESHOLD = best["tau"]
        cfg.DATASETS.TO_TEST = "test"
        cfg.freeze()
        ctx.logger.info("Testing %s with the chosen tau %.3f", ", ".join(cfg.DATASETS.TEST), best["tau"])
        evaluate_relation_model(cfg, model, ctx)


if __name__ == "__main__":
    main()
