"""The relation head trains on PSG-format data in PredCls (134 classes, 57 predicates), in process."""
import os

import torch

from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.data.datasets.synthetic_psg import SyntheticPSGConfig, make_synthetic_psg
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.engine.relation_train import freeze_detector
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.solver import make_optimizer
from relation_tool_args import REPO, small_overrides

CONFIG = os.path.join(REPO, "configs", "psg", "relation_R_18_FPN_predcls.yaml")


def test_relation_head_trains_three_iterations_in_predcls(tmp_path):
    data_dir = tmp_path / "data"
    make_synthetic_psg(str(data_dir), 12, seed=0, config=SyntheticPSGConfig(image_long_side=96))
    cfg = load_config(CONFIG, small_overrides(str(data_dir), str(tmp_path / "out"), 3))
    assert (cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES) == (134, 57)
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    freeze_detector(model)
    optimizer = make_optimizer(cfg, model, rl_factor=2.0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    model.train()
    loader = iter(make_data_loader(cfg, "train"))
    for _ in range(3):
        images, targets, _ = next(loader)
        assert targets[0].get_field("labels").max() <= 133
        losses = model(images, targets)
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert "loss_rel" in losses
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable))
