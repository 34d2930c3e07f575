"""Causal-MOTIFS through the tools on the tiny synthetic set: training, then testing with each
effect type; SGDet with SEPARATE_SPATIAL through the relation head; two-process training leaves
the same moving averages on both ranks."""
import json
import os
import subprocess
import sys

import torch

from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.engine.relation_train import freeze_detector
from maskrcnn_benchmark.modeling.detector import build_detection_model
from relation_tool_args import REPO, config_file, free_port, small_overrides

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
CONFIG = config_file("causal_predcls")
EFFECT = "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE"


def _run(cmd, timeout=300):
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _recalls(folder):
    metrics = json.load(open(os.path.join(folder, "inference", "synthetic_vg_test", "metrics.json")))
    assert metrics["num_images_evaluated"] > 0
    return metrics["metrics"]["R@K"]["50"], metrics["metrics"]["mR@K"]["50"]


def test_tools_train_causal_motifs_and_test_each_effect(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "train")
    _run([sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file", CONFIG,
          "--skip-test", *small_overrides(synthetic_data_dir, out, 4)])
    weights = os.path.join(out, "model_final.pth")
    averages = torch.load(weights, weights_only=True)["model"]
    assert torch.count_nonzero(averages["roi_heads.relation.predictor.context_layer.untreated_edg_feat"]) > 0
    recalls = {}
    for effect in ("none", "TDE", "NIE", "TE"):
        folder = str(tmp_path / effect)
        _run([sys.executable, os.path.join(REPO, "tools", "relation_test_net.py"), "--config-file", CONFIG,
              *small_overrides(synthetic_data_dir, folder, 4, **{"MODEL.WEIGHT": weights, EFFECT: effect,
                                                                  "TEST.SAVE_PREDICTIONS": True})])
        recalls[effect] = _recalls(folder)
    assert recalls["TDE"] != recalls["none"]
    # NIE is identically 0 in PredCls: every predicate gets the uniform softmax 1 / 19.
    predictions = torch.load(os.path.join(str(tmp_path / "NIE"), "inference", "synthetic_vg_test", "predictions.pth"),
                             weights_only=True)
    scores = torch.cat([p["rel_scores"] for p in predictions])
    assert scores.numel() > 0 and torch.allclose(scores, torch.full_like(scores, 1 / 19))


def test_two_process_training_averages_the_moving_averages_over_ranks(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "ddp")
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
          os.path.join(os.path.dirname(os.path.abspath(__file__)), "causal_dist_worker.py"), CONFIG,
          *small_overrides(synthetic_data_dir, out, 3)])
    rank0, rank1 = (torch.load(os.path.join(out, f"averages_rank{r}.pth"), weights_only=True) for r in (0, 1))
    assert len(rank0) == 7 and rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert torch.count_nonzero(rank0["roi_heads.relation.predictor.avg_post_ctx"]) > 0


def test_sgdet_with_separate_spatial_through_the_relation_head(synthetic_data_dir, tmp_path):
    causal = {"MODEL.ROI_RELATION_HEAD.PREDICTOR": "CausalAnalysisPredictor",
              "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS": True,
              "MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL": True, EFFECT: "TDE"}
    cfg = load_config(config_file("sgdet"), small_overrides(synthetic_data_dir, str(tmp_path), 1, **causal))
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    freeze_detector(model)
    images, targets, _ = next(iter(make_data_loader(cfg, "train")))
    model.train()
    losses = model(images, targets)
    assert {"auxiliary_ctx", "auxiliary_vis", "auxiliary_frq"} <= set(losses)
    sum(losses.values()).backward()
    spatial_fc = model.roi_heads.relation.union_feature_extractor.spatial_fc
    assert spatial_fc[0].weight.grad.abs().sum() > 0
    predictor = model.roi_heads.relation.predictor
    assert torch.count_nonzero(predictor.untreated_conv_spt) > 0
    model.eval()
    with torch.no_grad():
        results = model(images)
    assert len(results) == len(images.tensors) and all(r.has_field("pred_rel_scores") for r in results)
