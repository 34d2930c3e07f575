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
from maskrcnn_benchmark.engine.relation_inference import relation_inference
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


def _recalls(metrics):
    assert metrics["num_images_evaluated"] > 0
    return metrics["metrics"]["R@K"]["50"], metrics["metrics"]["mR@K"]["50"]


def test_tools_train_causal_motifs_and_test_each_effect(synthetic_data_dir, tmp_path):
    """Train and test TDE with the tools; the other effects on the same weights in this process
    (the test tool's own functions, without three more start-ups)."""
    out, tde = str(tmp_path / "train"), str(tmp_path / "TDE")
    _run([sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file", CONFIG,
          "--skip-test", *small_overrides(synthetic_data_dir, out, 4)])
    weights = os.path.join(out, "model_final.pth")
    state = torch.load(weights, weights_only=True)["model"]
    assert torch.count_nonzero(state["roi_heads.relation.predictor.context_layer.untreated_edg_feat"]) > 0
    _run([sys.executable, os.path.join(REPO, "tools", "relation_test_net.py"), "--config-file", CONFIG,
          *small_overrides(synthetic_data_dir, tde, 4, **{"MODEL.WEIGHT": weights, EFFECT: "TDE"})])
    with open(os.path.join(tde, "inference", "synthetic_vg_test", "metrics.json")) as f:
        tool_tde = _recalls(json.load(f))

    cfg = load_config(CONFIG, small_overrides(synthetic_data_dir, str(tmp_path / "in_process"), 4))
    model = build_detection_model(cfg)
    model.load_state_dict(state)
    model.eval()
    loader = make_data_loader(cfg, "test")[0]
    predictor = model.roi_heads.relation.predictor
    recalls = {}
    for effect in ("none", "TDE", "NIE", "TE"):
        predictor.effect_type = effect
        recalls[effect] = _recalls(relation_inference(cfg, model, loader, "synthetic_vg_test", torch.device("cpu")))
    assert recalls["TDE"] == tool_tde and recalls["TDE"] != recalls["none"]
    # NIE is identically 0 in PredCls: every predicate gets the uniform softmax 1 / 19.
    predictor.effect_type = "NIE"
    images, targets, _ = next(iter(loader))
    with torch.no_grad():
        scores = torch.cat([r.get_field("pred_rel_scores") for r in model(images, targets)])
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
