"""The "+1 pixel" box ops and the legacy layers agree with plain re-statements of the benchmark's rules."""
import math

import pytest
import torch
import torchvision

from maskrcnn_benchmark.layers import (
    FrozenBatchNorm2d,
    ROIAlign,
    batched_nms,
    boxlist_nms,
    nms,
    remove_small_boxes,
    smooth_l1_loss,
)
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.modeling.poolers import LevelMapper
from maskrcnn_benchmark.structures import BoxList, box_iou


def random_boxes(n: int, seed: int, degenerate: bool = True) -> torch.Tensor:
    """xyxy boxes on a 0..100 grid; with ``degenerate``, widths/heights down to -3 (x2 < x1) and 0."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 100, (n, 2), generator=g).float()
    low = -3 if degenerate else 2
    wh = torch.randint(low, 40, (n, 2), generator=g).float()
    return torch.cat([xy, xy + wh], dim=1)


def ref_iou(a, b):
    """Legacy IoU of two boxes (lists), widths x2 - x1 + 1."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    union = area_a + area_b - inter
    return inter / union if union != 0 else float("nan")


def ref_nms(boxes, scores, thresh):
    """Greedy NMS: take the best remaining box, drop every box whose legacy IoU with it exceeds thresh."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep, removed = [], set()
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        for j in order:
            if j not in removed and j != i and ref_iou(boxes[i], boxes[j]) > thresh:
                removed.add(j)
    return keep


def test_box_iou_uses_plus_one_widths_including_degenerate_boxes():
    a, b = random_boxes(30, 0), random_boxes(20, 1)
    got = box_iou(a, b, legacy=True)
    expected = torch.tensor([[ref_iou(x, y) for y in b.tolist()] for x in a.tolist()])
    finite = torch.isfinite(expected)
    assert torch.allclose(got[finite], expected[finite], atol=1e-6)


@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_greedy_plus_one_reference(thresh, seed):
    boxes = random_boxes(200, seed)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(100 + seed))
    assert nms(boxes, scores, thresh).tolist() == ref_nms(boxes.tolist(), scores.tolist(), thresh)


def test_nms_differs_from_torchvision_where_the_plus_one_matters():
    # Legacy IoU 50 / 150 = 0.333; continuous IoU 36 / 126 = 0.286.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]])
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.3).tolist() == [0]
    assert torchvision.ops.nms(boxes, scores, 0.3).tolist() == [0, 1]
    assert nms(boxes, scores, 0.3, legacy=False).tolist() == [0, 1]


def test_batched_nms_is_per_class_nms():
    boxes = random_boxes(300, 3)
    g = torch.Generator().manual_seed(4)
    scores = torch.rand(300, generator=g)
    classes = torch.randint(0, 5, (300,), generator=g)
    keep = batched_nms(boxes, scores, classes, 0.4)
    expected = []
    for c in range(5):
        idx = torch.nonzero(classes == c).squeeze(1).tolist()
        expected += [idx[k] for k in ref_nms(boxes[idx].tolist(), scores[idx].tolist(), 0.4)]
    expected.sort(key=lambda i: -scores[i].item())
    assert keep.tolist() == expected


def test_boxlist_nms_caps_and_remove_small_boxes_uses_plus_one():
    boxes = random_boxes(100, 5, degenerate=False)
    boxlist = BoxList(boxes, (200, 200))
    boxlist.add_field("scores", torch.rand(100, generator=torch.Generator().manual_seed(6)))
    kept, keep = boxlist_nms(boxlist, 0.5, max_proposals=7, score_field="scores")
    # The benchmark's kernel returned survivors in index order; the cap takes the first ones.
    assert keep.tolist() == sorted(ref_nms(boxes.tolist(), boxlist.get_field("scores").tolist(), 0.5))[:7]
    assert torch.equal(kept.bbox, boxes[keep])
    tiny = BoxList(torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 5.0], [0.0, 0.0, -2.0, 5.0]]), (10, 10))
    assert len(remove_small_boxes(tiny, 0)) == 2  # widths 1, 0, -1
    assert len(remove_small_boxes(tiny, 1)) == 1


def ref_encode(gt, ex, w):
    ew, eh = ex[2] - ex[0] + 1, ex[3] - ex[1] + 1
    gw, gh = gt[2] - gt[0] + 1, gt[3] - gt[1] + 1
    ecx, ecy, gcx, gcy = ex[0] + ew / 2, ex[1] + eh / 2, gt[0] + gw / 2, gt[1] + gh / 2
    return [w[0] * (gcx - ecx) / ew, w[1] * (gcy - ecy) / eh, w[2] * math.log(gw / ew), w[3] * math.log(gh / eh)]


def ref_decode(code, box, w, clip=math.log(1000.0 / 16)):
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    cx, cy = box[0] + bw / 2 + code[0] / w[0] * bw, box[1] + bh / 2 + code[1] / w[1] * bh
    pw, ph = math.exp(min(code[2] / w[2], clip)) * bw, math.exp(min(code[3] / w[3], clip)) * bh
    return [cx - pw / 2, cy - ph / 2, cx + pw / 2 - 1, cy + ph / 2 - 1]


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_box_coder_matches_reference_and_round_trips(weights):
    coder = BoxCoder(weights)
    gt, ex = random_boxes(50, 7, degenerate=False), random_boxes(50, 8, degenerate=False)
    codes = coder.encode(gt, ex)
    expected = torch.tensor([ref_encode(g, e, weights) for g, e in zip(gt.tolist(), ex.tolist())])
    assert torch.allclose(codes, expected, atol=1e-5)
    assert torch.allclose(coder.decode(codes, ex), gt, atol=1e-3)

    g = torch.Generator().manual_seed(9)
    rel = torch.randn(50, 8, generator=g) * 3  # two boxes per row, including clamped dw/dh
    got = coder.decode(rel, ex)
    exp = torch.tensor([ref_decode(r[:4], e, weights) + ref_decode(r[4:], e, weights)
                        for r, e in zip(rel.tolist(), ex.tolist())])
    assert torch.allclose(got, exp, rtol=1e-5, atol=1e-3)


def test_frozen_batch_norm_has_no_epsilon_and_only_buffers():
    bn = FrozenBatchNorm2d(3)
    assert list(bn.parameters()) == []
    assert sorted(bn.state_dict()) == ["bias", "running_mean", "running_var", "weight"]
    bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1e-6, 4.0, 0.25]))
    x = torch.randn(2, 3, 4, 5)
    w, b, m, v = (t.view(1, 3, 1, 1) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var))
    assert torch.allclose(bn(x), (x - m) * w / v.sqrt() + b, rtol=1e-5)


def test_smooth_l1_loss_beta():
    x = torch.tensor([0.0, 0.05, 0.2, -1.0])
    beta = 0.1
    expected = torch.tensor([0.0, 0.5 * 0.05 ** 2 / beta, 0.2 - 0.05, 1.0 - 0.05])
    assert torch.allclose(smooth_l1_loss(x, torch.zeros(4), beta=beta, size_average=False), expected.sum())
    assert torch.allclose(smooth_l1_loss(x, torch.zeros(4), beta=beta), expected.mean())


def ref_roi_align(feature, roi, scale, out_size, ratio):
    """Detectron's ROIAlign (no half-pixel shift, roi at least 1x1, bilinear with edge rules)."""
    _, height, width = feature.shape
    x1, y1, x2, y2 = (c * scale for c in roi)
    roi_w, roi_h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    bin_w, bin_h = roi_w / out_size, roi_h / out_size

    def bilinear(y, x):
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return feature.new_zeros(feature.shape[0])
        y, x = max(y, 0.0), max(x, 0.0)
        y_lo, x_lo = int(y), int(x)
        if y_lo >= height - 1:
            y_lo = y_hi = height - 1
            y = float(y_lo)
        else:
            y_hi = y_lo + 1
        if x_lo >= width - 1:
            x_lo = x_hi = width - 1
            x = float(x_lo)
        else:
            x_hi = x_lo + 1
        ly, lx = y - y_lo, x - x_lo
        return ((1 - ly) * (1 - lx) * feature[:, y_lo, x_lo] + (1 - ly) * lx * feature[:, y_lo, x_hi]
                + ly * (1 - lx) * feature[:, y_hi, x_lo] + ly * lx * feature[:, y_hi, x_hi])

    out = feature.new_zeros(feature.shape[0], out_size, out_size)
    for ph in range(out_size):
        for pw in range(out_size):
            acc = feature.new_zeros(feature.shape[0])
            for iy in range(ratio):
                for ix in range(ratio):
                    acc += bilinear(y1 + ph * bin_h + (iy + 0.5) * bin_h / ratio,
                                    x1 + pw * bin_w + (ix + 0.5) * bin_w / ratio)
            out[:, ph, pw] = acc / (ratio * ratio)
    return out


def test_roi_align_matches_detectron_grid():
    g = torch.Generator().manual_seed(10)
    features = torch.randn(2, 3, 12, 15, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0, 3.0, 5.0, 40.0, 30.0], [1, -6.0, -2.0, 70.0, 55.0], [0, 20.0, 20.0, 21.0, 20.5],
                         [1, 50.0, 40.0, 63.0, 47.0]], dtype=torch.float64)
    got = ROIAlign((4, 4), spatial_scale=0.25, sampling_ratio=2)(features, rois)
    for k, roi in enumerate(rois.tolist()):
        expected = ref_roi_align(features[int(roi[0])], roi[1:], 0.25, 4, 2)
        assert torch.allclose(got[k], expected, atol=1e-9)


def test_level_mapper_uses_plus_one_area():
    mapper = LevelMapper(2, 5)
    boxes = BoxList(torch.tensor([[0.0, 0.0, 223.0, 223.0],  # sqrt(area) 224 -> level 4
                                  [0.0, 0.0, 222.0, 222.0],  # 223 -> level 3
                                  [0.0, 0.0, 111.0, 111.0],  # 112 -> level 3
                                  [0.0, 0.0, 10.0, 10.0],    # tiny -> clamped to 2
                                  [0.0, 0.0, 999.0, 999.0]]), (1000, 1000))  # huge -> clamped to 5
    assert (mapper([boxes]) + 2).tolist() == [4, 3, 3, 2, 5]
