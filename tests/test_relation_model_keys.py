"""The full X-101-32x8d-FPN relation model has exactly the benchmark's keys: 627 with MotifPredictor,
637 with the yaml's CausalAnalysisPredictor (plus the union extractor's spatial_fc with SEPARATE_SPATIAL)."""
import json
from pathlib import Path

import torch
from shared_data import require_shared

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.roi_heads.relation_head import relation_head

REPO_ROOT = Path(__file__).resolve().parents[1]


def _statistics():
    return {"obj_classes": ["__background__"] + [f"class{i}" for i in range(150)],
            "rel_classes": ["__background__"] + [f"predicate{i}" for i in range(50)],
            "att_classes": ["__background__"], "pred_dist": torch.zeros(151, 151, 51)}


def _reference():
    return json.loads(require_shared("data", "reference", "state_dict_keys_x101fpn_motifs.json").read_text())


def _build_yaml_model_on_meta(monkeypatch, tmp_path, *overrides):
    (tmp_path / "glove.6B.200d.txt").write_text("start " + " ".join(["0.1"] * 200) + "\n")
    monkeypatch.setattr(relation_head, "get_dataset_statistics", lambda config: _statistics())
    config = cfg.clone()
    config.merge_from_file(str(REPO_ROOT / "configs" / "e2e_relation_X_101_32_8_FPN_1x.yaml"))
    config.merge_from_list(["GLOVE_DIR", str(tmp_path), *overrides])
    with torch.device("meta"):
        return build_detection_model(config)


def test_x101_motifs_relation_model_matches_the_benchmark_keys(monkeypatch, tmp_path):
    reference = _reference()
    model = _build_yaml_model_on_meta(monkeypatch, tmp_path, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor")
    parameters = dict(model.named_parameters())
    got = [(key, list(value.shape), "parameter" if key in parameters else "buffer")
           for key, value in model.state_dict().items()]
    expected = [(k["key"], k["shape"], k["kind"]) for k in reference["keys"]]
    assert sorted(got) == sorted(expected)
    assert len(got) == reference["num_keys"] == 627
    assert sum(p.numel() for p in parameters.values()) == reference["total_numel_parameters"]


def test_x101_yaml_model_is_causal_motifs_with_the_benchmark_counts(monkeypatch, tmp_path):
    counts = _reference()["param_counts_by_predictor"]["CausalAnalysisPredictor"]
    model = _build_yaml_model_on_meta(monkeypatch, tmp_path)
    assert type(model.roi_heads.relation.predictor).__name__ == "CausalAnalysisPredictor"
    assert len(model.state_dict()) == counts["num_state_dict_keys"] == 637
    assert sum(p.numel() for p in model.parameters()) == counts["total_params"]


def test_separate_spatial_adds_the_union_extractors_spatial_fc(monkeypatch, tmp_path):
    model = _build_yaml_model_on_meta(monkeypatch, tmp_path, "MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL", True)
    prefix = "roi_heads.relation.union_feature_extractor.spatial_fc."
    added = {k[len(prefix):]: list(v.shape) for k, v in model.state_dict().items() if k.startswith(prefix)}
    assert added == {"0.weight": [2048, 12544], "0.bias": [2048], "2.weight": [4096, 2048], "2.bias": [4096]}
