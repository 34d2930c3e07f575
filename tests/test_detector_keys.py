"""The X-101-32x8d-FPN detector has exactly the benchmark's non-relation state_dict keys."""
import json
from pathlib import Path

import torch
from shared_data import require_shared

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.modeling.detector import build_detection_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_x101_on_meta():
    config = cfg.clone()
    config.merge_from_file(str(REPO_ROOT / "configs" / "e2e_relation_detector_X_101_32_8_FPN_1x.yaml"))
    with torch.device("meta"):
        return build_detection_model(config)


def test_x101_fpn_keys_shapes_and_kinds_match_the_benchmark():
    reference = json.loads(require_shared("data", "reference", "state_dict_keys_x101fpn_motifs.json").read_text())
    expected = {k["key"]: (tuple(k["shape"]), k["kind"]) for k in reference["keys"]
                if not k["key"].startswith("roi_heads.relation.")}
    model = build_x101_on_meta()
    parameters = dict(model.named_parameters())
    got = {key: (tuple(value.shape), "parameter" if key in parameters else "buffer")
           for key, value in model.state_dict().items()}
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert {k: v for k, v in got.items() if expected[k] != v} == {}
    assert len(got) == 555


def test_x101_fpn_freezes_stem_and_layer1_only():
    model = build_x101_on_meta()
    frozen = {name.split(".")[2] for name, p in model.named_parameters()
              if name.startswith("backbone.body.") and not p.requires_grad}
    assert frozen == {"stem", "layer1"}
    assert all(p.requires_grad for name, p in model.named_parameters() if not name.startswith("backbone.body."))
