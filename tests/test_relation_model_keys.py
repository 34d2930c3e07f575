"""The full X-101-32x8d-FPN + MotifPredictor relation model has exactly the benchmark's 627 keys."""
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


def test_x101_motifs_relation_model_matches_the_benchmark_keys(monkeypatch, tmp_path):
    reference = json.loads(require_shared("data", "reference", "state_dict_keys_x101fpn_motifs.json").read_text())
    (tmp_path / "glove.6B.200d.txt").write_text("start " + " ".join(["0.1"] * 200) + "\n")
    monkeypatch.setattr(relation_head, "get_dataset_statistics", lambda config: _statistics())
    config = cfg.clone()
    config.merge_from_file(str(REPO_ROOT / "configs" / "e2e_relation_X_101_32_8_FPN_1x.yaml"))
    config.merge_from_list(["GLOVE_DIR", str(tmp_path)])
    with torch.device("meta"):
        model = build_detection_model(config)
    parameters = dict(model.named_parameters())
    got = [(key, list(value.shape), "parameter" if key in parameters else "buffer")
           for key, value in model.state_dict().items()]
    expected = [(k["key"], k["shape"], k["kind"]) for k in reference["keys"]]
    assert sorted(got) == sorted(expected)
    assert len(got) == reference["num_keys"] == 627
    assert sum(p.numel() for p in parameters.values()) == reference["total_numel_parameters"]
