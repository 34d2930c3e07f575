"""HML trains CausalAnalysisPredictor like any other predictor: both stages through the tools, MR over
the authors' parameter set for Causal (P = 65,274,234 at the benchmark's dimensions, REFERENCE 6.6),
and a frozen teacher that scores like the student and leaves the moving averages alone."""
import copy
import json
import os
import subprocess
import sys

import torch
from torch import nn

import hml_patch  # noqa: F401  (the HML config group and framework)
from hml_patch.config import DEFAULT_PARAM_FILTER
from hml_patch.teacher import RelationTeacher
from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.modeling.roi_heads.relation_head.registry_entries import make_roi_relation_predictor
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch
from relation_tool_args import REPO, config_file, small_overrides
from shared_data import require_shared
from test_causal_predictor import averages, causal, set_trained_averages
from test_relation_predictors import make_batch

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
TREE_FILE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
MR_MODULES = {"context_layer", "post_emb", "post_cat", "ctx_compress"}


def test_mr_parameter_set_of_causal_motifs_is_the_authors(tmp_path):
    (tmp_path / "glove.6B.200d.txt").write_text("start " + " ".join(["0.1"] * 200) + "\n")
    cfg = default_cfg.clone()
    cfg.merge_from_list([
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES", 151, "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 4096,
        "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", 51, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "CausalAnalysisPredictor",
        "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS", True,
        "MODEL.ROI_RELATION_HEAD.CAUSAL.SPATIAL_FOR_VISION", True, "GLOVE_DIR", str(tmp_path)])
    statistics = {"obj_classes": ["__background__"] + [f"class{i}" for i in range(150)],
                  "rel_classes": ["__background__"] + [f"predicate{i}" for i in range(50)],
                  "pred_dist": torch.zeros(151, 151, 51)}
    with torch.device("meta"):
        predictor = make_roi_relation_predictor(cfg, 4096, statistics)
    named = [(n, p) for n, p in predictor.named_parameters() if n.startswith(DEFAULT_PARAM_FILTER)]
    assert {n.split(".")[0] for n, _ in named} == MR_MODULES  # no vis_compress, freq_bias, spt_emb
    reference = json.loads(require_shared("data", "reference", "state_dict_keys_x101fpn_motifs.json").read_text())
    counts = reference["param_counts_by_predictor"]["CausalAnalysisPredictor"]
    assert sum(p.numel() for _, p in named) == counts["hml_mr_filtered_params"] == 65_274_234


def test_hml_tool_trains_causal_motifs_in_both_stages(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "hml")
    opts = small_overrides(synthetic_data_dir, out, 3, **{
        "MODEL.ROI_RELATION_HEAD.HML": True, "HML.TREE": TREE_FILE, "HML.STAGE_MAX_ITER": "[2, 3]"})
    cmd = [sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file",
           config_file("causal_predcls"), "--skip-test", *opts]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(os.path.join(out, "stage2", "stage_report.json")) as f:
        report = json.load(f)
    assert {"loss_cr", "loss_mr", "auxiliary_ctx", "auxiliary_vis", "auxiliary_frq"} <= set(report["final_losses"])
    assert {name.split(".")[0] for name in report["parameter_importance"]} == MR_MODULES
    model = torch.load(os.path.join(out, "stage2", "model_final.pth"), weights_only=True)["model"]
    assert torch.count_nonzero(model["roi_heads.relation.predictor.context_layer.untreated_edg_feat"]) > 0


class _Fixed(nn.Module):
    """A feature extractor stand-in that returns the given features."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, *args):
        return self.value


def test_the_teacher_scores_like_the_student_and_freezes_the_averages():
    student = causal(mode="sgcls").train()
    set_trained_averages(student)
    proposals, pairs, labels, binarys, roi, union = make_batch("sgcls")
    teacher = RelationTeacher(_Fixed(roi), _Fixed(union), copy.deepcopy(student))
    before = {k: v.clone() for k, v in averages(teacher.predictor).items()}
    logits = teacher(RelationBatch([], proposals, pairs, labels, binarys, [], []))
    assert all(torch.equal(before[k], v) for k, v in averages(teacher.predictor).items())
    for module in student.modules():  # the teacher's BatchNorm uses its running statistics
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    assert torch.allclose(torch.cat(logits), torch.cat(student(proposals, pairs, labels, binarys, roi, union)[1]))
    assert not all(torch.equal(before[k], v) for k, v in averages(student).items())
