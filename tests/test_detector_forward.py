"""R-18-FPN detector on tiny inputs: losses, detections, relation-mode box head, anchors, pooler."""
import math
from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.modeling.detector import GeneralizedRCNN, build_detection_model
from maskrcnn_benchmark.modeling.poolers import Pooler
from maskrcnn_benchmark.modeling.roi_heads import roi_heads as roi_heads_module
from maskrcnn_benchmark.modeling.roi_heads.box_head import build_roi_box_head
from maskrcnn_benchmark.modeling.roi_heads.box_head.inference import PostProcessor
from maskrcnn_benchmark.modeling.roi_heads.roi_heads import (
    CombinedROIHeads,
    build_roi_heads,
)
from maskrcnn_benchmark.modeling.rpn.anchor_generator import (
    AnchorGenerator,
    generate_anchors,
    make_anchor_generator,
)
from maskrcnn_benchmark.structures import BoxList, to_image_list

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 29
IMAGE_SIZES = [(128, 160), (96, 128)]  # (height, width)


def tiny_config():
    config = cfg.clone()
    config.merge_from_file(str(REPO_ROOT / "configs" / "synthetic_vg" / "detector_R_18_FPN.yaml"))
    return config


def make_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, h, w, generator=g) * 50 for h, w in IMAGE_SIZES]
    targets = []
    for h, w in IMAGE_SIZES:
        n = 4
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = 12 + torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
        boxes = torch.cat([xy, (xy + wh).minimum(torch.tensor([w - 1.0, h - 1.0]))], dim=1).round()
        target = BoxList(boxes, (w, h))
        target.add_field("labels", torch.randint(1, NUM_CLASSES, (n,), generator=g))
        target.add_field("attributes", torch.zeros(n, 10, dtype=torch.int64))
        targets.append(target)
    return to_image_list(images, 32), targets


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_detection_model(tiny_config())


def test_training_gives_the_four_detector_losses_and_gradients(model):
    images, targets = make_inputs()
    torch.manual_seed(0)  # the RoI and anchor samplers draw from the global generator
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    model.zero_grad()
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    for name in ("backbone.body.stem.conv1.weight", "backbone.body.layer4.1.conv2.weight",
                 "backbone.fpn.fpn_inner1.weight", "rpn.head.cls_logits.weight", "rpn.head.bbox_pred.weight",
                 "roi_heads.box.feature_extractor.fc6.weight", "roi_heads.box.predictor.cls_score.weight",
                 "roi_heads.box.predictor.bbox_pred.weight"):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def test_eval_returns_detections_inside_each_image(model):
    images, _ = make_inputs()
    model.eval()
    with torch.no_grad():
        results = model(images)
    assert len(results) == 2
    for result, (h, w) in zip(results, IMAGE_SIZES):
        assert isinstance(result, BoxList) and result.size == (w, h)
        assert 0 < len(result) <= 50
        assert set(result.fields()) == {"pred_scores", "pred_labels"}
        labels, scores = result.get_field("pred_labels"), result.get_field("pred_scores")
        assert labels.min() >= 1 and labels.max() < NUM_CLASSES and scores.min() > 0.01
        assert result.bbox[:, :2].min() >= 0
        assert (result.bbox[:, 2] <= w - 1).all() and (result.bbox[:, 3] <= h - 1).all()


def relation_box_head(model, use_gt_box, use_gt_label, filter_duplicates=True):
    config = tiny_config()
    config.MODEL.RELATION_ON = True
    config.MODEL.ROI_RELATION_HEAD.USE_GT_BOX = use_gt_box
    config.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL = use_gt_label
    config.MODEL.ROI_HEADS.NMS_FILTER_DUPLICATES = filter_duplicates
    head = build_roi_box_head(config, model.backbone.out_channels)
    head.load_state_dict(model.roi_heads.box.state_dict())
    return head


def test_predcls_and_sgcls_use_the_ground_truth_boxes(model):
    images, targets = make_inputs(1)
    with torch.no_grad():
        features = model.backbone(images.tensors)
        for use_gt_label in (True, False):
            head = relation_box_head(model, True, use_gt_label).train()
            x, boxes, losses = head(features, None, targets)
            assert losses == {} and x.shape == (8, 256)
            for out, target in zip(boxes, targets):
                assert torch.equal(out.bbox, target.bbox)
                assert torch.equal(out.get_field("labels"), target.get_field("labels"))
                assert out.has_field("attributes") and not out.has_field("relation")
                assert out.has_field("predict_logits") != use_gt_label
            if not use_gt_label:
                logits = torch.cat([b.get_field("predict_logits") for b in boxes])
                assert torch.allclose(logits, head.predictor(x)[0])


def test_sgdet_relation_outputs_on_ground_truth_proposals(model):
    images, targets = make_inputs(2)
    head = relation_box_head(model, False, False).eval()
    with torch.no_grad():
        head.predictor.bbox_pred.weight.zero_()  # no regression: every class box is its proposal
        head.predictor.bbox_pred.bias.zero_()
        features = model.backbone(images.tensors)
        proposals = [t.copy_with_fields([]) for t in targets]
        _, detections, losses = head(features, proposals, targets)
    assert losses == {}
    for det, target in zip(detections, targets):
        assert {"pred_scores", "pred_labels", "labels", "attributes", "predict_logits",
                "boxes_per_cls"} <= set(det.fields())
        n = len(det)
        assert det.get_field("boxes_per_cls").shape == (n, NUM_CLASSES, 4)
        assert det.get_field("predict_logits").shape == (n, NUM_CLASSES)
        labels = det.get_field("pred_labels")
        assert torch.equal(det.bbox, det.get_field("boxes_per_cls")[torch.arange(n), labels])
        # Each detection is one GT box (one label per box with NMS_FILTER_DUPLICATES) and carries its label.
        match = (det.bbox[:, None, :] == target.bbox[None, :, :]).all(dim=2).float().argmax(dim=1)
        assert torch.equal(det.bbox, target.bbox[match])
        assert len(set(match.tolist())) == n
        assert torch.equal(det.get_field("labels"), target.get_field("labels")[match])


def test_relation_on_drops_detector_losses_and_skips_the_rpn_with_gt_boxes(model):
    images, targets = make_inputs(3)
    heads = CombinedROIHeads({"box": relation_box_head(model, True, True)})
    relation_model = GeneralizedRCNN(model.backbone, model.rpn, heads, relation_on=True)
    calls = []
    hook = model.rpn.register_forward_hook(lambda *args: calls.append(1))
    try:
        assert relation_model.train()(images, targets) == {}
        boxes = relation_model.eval()(images, targets)
        assert [torch.equal(b.bbox, t.bbox) for b, t in zip(boxes, targets)] == [True, True]
        assert calls == []
        relation_model.roi_heads = CombinedROIHeads({"box": relation_box_head(model, False, False)})
        assert relation_model.train()(images, targets) == {}
        assert calls == [1]
    finally:
        hook.remove()


def test_post_processor_nms_duplicates_and_cap():
    # Proposals A and B overlap (legacy IoU 0.85), C is apart. Class probabilities per proposal:
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.1, 0.6, 0.3], [0.09, 0.01, 0.9]])
    boxes = BoxList(torch.tensor([[0.0, 0.0, 49.0, 49.0], [2.0, 2.0, 51.0, 51.0], [100.0, 100.0, 149.0, 149.0]]),
                    (200, 200))
    features = torch.arange(3.0)[:, None]
    regression = torch.zeros(3, 12)

    def run(**kwargs):
        processor = PostProcessor(score_thresh=0.05, nms=0.3, box_coder=BoxCoder((10, 10, 5, 5)), **kwargs)
        feats, (det,) = processor(features, probs.log(), regression, [boxes])
        return feats.squeeze(1).tolist(), det.get_field("pred_labels").tolist(), det.get_field("pred_scores")

    # Per class: class 1 keeps A (B suppressed, C under the threshold); class 2 keeps B and C,
    # in proposal order as in the benchmark (by score with per_cls_topn_by_score).
    feats, labels, scores = run(nms_filter_duplicates=False, detections_per_img=100)
    assert (feats, labels) == ([0.0, 1.0, 2.0], [1, 2, 2])
    assert torch.allclose(scores, torch.tensor([0.7, 0.3, 0.9]))
    feats, labels, _ = run(nms_filter_duplicates=False, detections_per_img=100, per_cls_topn_by_score=True)
    assert (feats, labels) == ([0.0, 2.0, 1.0], [1, 2, 2])
    feats, labels, _ = run(nms_filter_duplicates=True, detections_per_img=100)
    assert (feats, labels) == ([0.0, 1.0, 2.0], [1, 2, 2])
    feats, labels, _ = run(nms_filter_duplicates=True, detections_per_img=2)
    assert (feats, labels) == ([0.0, 2.0], [1, 2])


def detectron_cell_anchors(stride, size, ratios):
    """The Detectron rule restated: round the ratio-enumerated sides of a stride x stride window, scale, centre."""
    centre = (stride - 1) / 2.0
    rows = []
    for r in ratios:
        w = round(math.sqrt(stride * stride / r))
        h = round(w * r)
        w, h = w * size / stride, h * size / stride
        rows.append([centre - (w - 1) / 2, centre - (h - 1) / 2, centre + (w - 1) / 2, centre + (h - 1) / 2])
    return torch.tensor(rows)


def test_cell_anchors_are_the_benchmarks():
    config = cfg.clone()
    config.merge_from_file(str(REPO_ROOT / "configs" / "e2e_relation_detector_X_101_32_8_FPN_1x.yaml"))
    generator = make_anchor_generator(config)
    cells = list(generator.cell_anchors)
    assert len(cells) == 5
    for cell, stride, size in zip(cells, (4, 8, 16, 32, 64), (32, 64, 128, 256, 512)):
        assert cell.dtype == torch.float32 and cell.shape == (4, 4)
        assert torch.allclose(cell, detectron_cell_anchors(stride, size, config.MODEL.RPN.ASPECT_RATIOS))
    # The original Faster R-CNN anchors (stride 16, sizes 128-512, ratios 0.5, 1, 2), published
    # 1-based from the MATLAB code; the benchmark's are the same boxes 0-based.
    matlab = torch.tensor([[-83, -39, 100, 56], [-175, -87, 192, 104], [-359, -183, 376, 200],
                           [-55, -55, 72, 72], [-119, -119, 136, 136], [-247, -247, 264, 264],
                           [-35, -79, 52, 96], [-79, -167, 96, 184], [-167, -343, 184, 360]], dtype=torch.float32)
    assert torch.equal(generate_anchors(16, (128, 256, 512), (0.5, 1.0, 2.0)), matlab - 1)


def test_grid_anchors_order_and_visibility():
    generator = AnchorGenerator(sizes=(32, 64), aspect_ratios=(0.5, 1.0, 2.0), anchor_strides=(8, 16))
    images = to_image_list([torch.zeros(3, 40, 64)], 16)
    features = [torch.zeros(1, 1, 6, 8), torch.zeros(1, 1, 3, 4)]
    (level0, level1), = generator(images, features)
    cell = list(generator.cell_anchors)[0]
    anchors = level0.bbox.view(6, 8, 3, 4)
    assert torch.equal(anchors[2, 5], cell + torch.tensor([40.0, 16.0, 40.0, 16.0]))
    assert len(level1) == 3 * 4 * 3 and level0.size == (64, 40)
    visible = level0.get_field("visibility")
    b = level0.bbox
    assert torch.equal(visible, (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] < 64) & (b[:, 3] < 40))


def test_pooler_by_level_and_all_levels():
    torch.manual_seed(0)
    features = [torch.randn(1, 2, 512 // s, 512 // s) for s in (4, 8, 16, 32)]
    boxes = BoxList(torch.tensor([[0.0, 0.0, 20.0, 20.0], [10.0, 0.0, 499.0, 489.0], [0.0, 0.0, 150.0, 150.0],
                                  [5.0, 5.0, 304.0, 304.0]]), (512, 512))
    pooler = Pooler((7, 7), (0.25, 0.125, 0.0625, 0.03125), sampling_ratio=2, in_channels=2)
    pooled = pooler([*features], [boxes])
    levels = pooler.map_levels([boxes]).tolist()
    assert levels == [0, 3, 1, 2]
    for k, level in enumerate(levels):
        alone = pooler.poolers[level](features[level], torch.cat([torch.zeros(1, 1), boxes.bbox[k:k + 1]], dim=1))
        assert torch.equal(pooled[k:k + 1], alone)
    all_levels = Pooler((7, 7), (0.25, 0.125, 0.0625, 0.03125), 2, in_channels=2, cat_all_levels=True)
    assert sorted(all_levels.state_dict()) == ["reduce_channel.0.bias", "reduce_channel.0.weight"]
    assert all_levels.reduce_channel[0].weight.shape == (2, 8, 3, 3)
    assert all_levels([*features], [boxes]).shape == (4, 2, 7, 7)


def test_relation_on_without_relation_package_is_a_clear_error(monkeypatch):
    missing = "maskrcnn_benchmark.modeling.roi_heads.no_such_relation_head"
    monkeypatch.setattr(roi_heads_module, "_RELATION_HEAD_PACKAGE", missing)
    config = tiny_config()
    config.MODEL.RELATION_ON = True
    with pytest.raises(RuntimeError, match="relation head package"):
        build_roi_heads(config, 64)
