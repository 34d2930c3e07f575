"""Where the benchmark's NMS order, and the cuts after it, decide which boxes survive (issue 19).

The benchmark's NMS kernels returned the kept indices in ascending index order, and each cap
after them took ``keep[:n]``: the first survivors in input order, not the best-scoring ones.
The reference below restates that order in plain PyTorch; the other tests pin each place
where the order or a cut matters, on hand-built cases whose input order differs from their
score order, with ties and with more survivors than the cap.
"""
import pytest
import torch

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.layers import boxlist_nms, nms
from maskrcnn_benchmark.modeling.box_coder import BoxCoder
from maskrcnn_benchmark.modeling.roi_heads.box_head.inference import PostProcessor, make_roi_box_post_processor
from maskrcnn_benchmark.modeling.roi_heads.relation_head.inference import obj_prediction_nms
from maskrcnn_benchmark.modeling.rpn.inference import RPNPostProcessor
from maskrcnn_benchmark.structures import BoxList


def legacy_iou(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, N]`` IoU with the benchmark's "+1" widths."""
    lt = torch.max(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return inter / (area[:, None] + area[None, :] - inter)


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float) -> torch.Tensor:
    """The benchmark's greedy NMS: visit by decreasing score (equal scores: lower index first),
    suppress IoU > thresh; kept indices in ascending index order, as its kernels returned them."""
    suppress = legacy_iou(boxes) > thresh
    order = sorted(range(len(scores)), key=lambda i: (-scores[i].item(), i))
    removed = torch.zeros(len(scores), dtype=torch.bool)
    keep = []
    for i in order:
        if not removed[i]:
            keep.append(i)
            removed |= suppress[i]
    return torch.tensor(sorted(keep), dtype=torch.int64)


def reference_box_post_processing(boxes_per_cls, scores, score_thresh, nms_thresh, topn, filter_duplicates,
                                  detections_per_img):
    """The benchmark's ``filter_results``: per class in class order, NMS keep in index order,
    then ``keep[:topn]``; optionally one label per proposal; then the kthvalue cut."""
    props, labels = [], []
    for j in range(1, scores.shape[1]):
        inds = torch.nonzero(scores[:, j] > score_thresh).squeeze(1)
        keep = reference_nms(boxes_per_cls[inds, j], scores[inds, j], nms_thresh)
        if topn > 0:
            keep = keep[:topn]
        props.append(inds[keep])
        labels.append(torch.full((len(keep),), j, dtype=torch.int64))
    props, labels = torch.cat(props), torch.cat(labels)
    if filter_duplicates:
        survived = torch.zeros_like(scores)
        survived[props, labels] = 1.0
        best, best_labels = (scores * survived).max(dim=1)
        props = torch.nonzero(best).squeeze(1)
        labels = best_labels[props]
    kept_scores = scores[props, labels]
    if len(kept_scores) > detections_per_img > 0:
        thresh = torch.kthvalue(kept_scores, len(kept_scores) - detections_per_img + 1).values
        top = torch.nonzero(kept_scores >= thresh).squeeze(1)
        props, labels = props[top], labels[top]
    return props, labels


def random_integer_boxes(generator, n, classes, image=1000):
    """``[n, classes, 4]`` integer-valued boxes (so that every IoU is computed exactly)."""
    xy = torch.randint(0, image - 40, (n, classes, 2), generator=generator).float()
    wh = torch.randint(4, 30, (n, classes, 2), generator=generator).float()
    return torch.cat([xy, xy + wh], dim=2)


def processor(**kwargs):
    args = dict(score_thresh=0.01, nms=0.3, post_nms_per_cls_topn=300, nms_filter_duplicates=False,
                detections_per_img=0)
    args.update(kwargs)
    return PostProcessor(**args)


@pytest.mark.parametrize("filter_duplicates,detections_per_img", [(False, 0), (False, 256), (True, 256)])
def test_box_post_processor_equals_the_benchmark_order_on_random_inputs(filter_duplicates, detections_per_img):
    g = torch.Generator().manual_seed(19)
    n, classes = 2500, 4
    boxes = random_integer_boxes(g, n, classes)
    scores = torch.softmax(torch.randn(n, classes, generator=g) * 2, dim=1)
    uncapped, uncapped_labels = reference_box_post_processing(boxes, scores, 0.01, 0.3, 0, False, 0)
    assert len(uncapped) > 5000
    assert min(int((uncapped_labels == j).sum()) for j in range(1, classes)) > 1000  # far past the cap

    expected = reference_box_post_processing(boxes, scores, 0.01, 0.3, 300, filter_duplicates, detections_per_img)
    post = processor(nms_filter_duplicates=filter_duplicates, detections_per_img=detections_per_img)
    result, props = post.filter_results(boxes, scores, (1000, 1000))
    labels = result.get_field("pred_labels")
    assert torch.equal(props, expected[0]) and torch.equal(labels, expected[1])
    assert torch.equal(result.bbox, boxes[props, labels])
    assert torch.equal(result.get_field("pred_scores"), scores[props, labels])

    _, by_score_props = processor(nms_filter_duplicates=filter_duplicates, detections_per_img=detections_per_img,
                                         per_cls_topn_by_score=True).filter_results(boxes, scores, (1000, 1000))
    assert not torch.equal(by_score_props, props)


def test_box_post_processor_forward_keeps_the_benchmark_order():
    """Through decoding and clipping (zero regression keeps integer boxes exact)."""
    g = torch.Generator().manual_seed(7)
    n, classes = 1500, 3
    boxes = random_integer_boxes(g, n, 1)[:, 0]
    logits = torch.randn(n, classes, generator=g)
    post = processor(box_coder=BoxCoder((10.0, 10.0, 5.0, 5.0)), detections_per_img=256)
    features, (result,) = post(torch.arange(float(n))[:, None], logits, torch.zeros(n, 4 * classes),
                               [BoxList(boxes, (1000, 1000))])
    props, labels = reference_box_post_processing(boxes[:, None].expand(n, classes, 4), torch.softmax(logits, 1),
                                                  0.01, 0.3, 300, False, 256)
    assert features.squeeze(1).long().tolist() == props.tolist()
    assert torch.equal(result.get_field("pred_labels"), labels)


def hand_built_class():
    """One foreground class. Proposals 0-5 are apart; 6 repeats 2 with a higher score and
    suppresses it; 7 repeats 4 with the same score and is suppressed by it (lower index first).
    Survivors in proposal order: 0, 1, 3, 4, 5, 6; by score: 1 and 3 (tied), 6, 5, 0, 4."""
    boxes = torch.tensor([[20.0 * k, 0.0, 20.0 * k + 9, 9.0] for k in range(6)])
    boxes = torch.cat([boxes, boxes[2:3], boxes[4:5]])
    fg = torch.tensor([0.3, 0.9, 0.5, 0.9, 0.2, 0.6, 0.7, 0.2])
    return torch.stack([boxes, boxes], dim=1), torch.stack([1 - fg, fg], dim=1)


def test_per_class_cap_keeps_the_first_survivors_in_proposal_order():
    boxes, scores = hand_built_class()
    _, props = processor(post_nms_per_cls_topn=10).filter_results(boxes, scores, (200, 20))
    assert props.tolist() == [0, 1, 3, 4, 5, 6]
    _, props = processor(post_nms_per_cls_topn=3).filter_results(boxes, scores, (200, 20))
    assert props.tolist() == [0, 1, 3]
    _, props = processor(post_nms_per_cls_topn=3, per_cls_topn_by_score=True).filter_results(boxes, scores, (200, 20))
    assert props.tolist() == [1, 3, 6]


def test_detections_per_img_keeps_ties_at_the_kth_score_in_their_order():
    boxes, scores = hand_built_class()
    # Survivors 0, 1, 3, 4, 5, 6 score 0.3, 0.9, 0.9, 0.2, 0.6, 0.7: the 2nd best is the tied 0.9.
    _, props = processor(detections_per_img=2).filter_results(boxes, scores, (200, 20))
    assert props.tolist() == [1, 3]
    _, props = processor(detections_per_img=1).filter_results(boxes, scores, (200, 20))
    assert props.tolist() == [1, 3]  # a tie at the k-th score keeps more than k
    _, props = processor(detections_per_img=4).filter_results(boxes, scores, (200, 20))
    assert props.tolist() == [1, 3, 5, 6]  # proposal order, not score order (6 before 5)


def test_filter_duplicates_picks_the_best_class_among_the_capped_survivors():
    # Two foreground classes on three apart proposals; a fourth ties its two classes.
    boxes = torch.tensor([[20.0 * k, 0.0, 20.0 * k + 9, 9.0] for k in range(4)])[:, None].expand(4, 3, 4)
    scores = torch.tensor([[0.5, 0.2, 0.3], [0.3, 0.6, 0.1], [0.4, 0.1, 0.5], [0.2, 0.4, 0.4]])

    def run(topn, by_score=False):
        result, props = processor(post_nms_per_cls_topn=topn, nms_filter_duplicates=True,
                                  per_cls_topn_by_score=by_score).filter_results(boxes, scores, (100, 20))
        return list(zip(props.tolist(), result.get_field("pred_labels").tolist()))

    assert run(0) == [(0, 2), (1, 1), (2, 2), (3, 1)]  # equal scores: the lower class
    # Class 1 keeps proposals 0 and 1, class 2 keeps 0 and 1: proposal 2 lost both of its classes.
    assert run(2) == [(0, 2), (1, 1)]
    assert run(1) == [(0, 2)]
    # By score, class 1 keeps 1 and 3, class 2 keeps 2 and 3.
    assert run(2, by_score=True) == [(1, 1), (2, 2), (3, 1)]


def test_builder_defaults_to_the_benchmark_cap_and_reads_the_switch():
    config = cfg.clone()
    assert make_roi_box_post_processor(config).per_cls_topn_by_score is False
    config.MODEL.ROI_HEADS.POST_NMS_PER_CLS_TOPN_BY_SCORE = True
    assert make_roi_box_post_processor(config).per_cls_topn_by_score is True


def test_nms_takes_equal_scores_in_index_order():
    g = torch.Generator().manual_seed(3)
    boxes = random_integer_boxes(g, 800, 1, image=200)[:, 0]
    scores = torch.randint(0, 4, (800,), generator=g).float() / 4  # many ties
    keep = nms(boxes, scores, 0.3)
    expected = reference_nms(boxes, scores, 0.3).tolist()
    assert keep.tolist() == sorted(expected, key=lambda i: (-scores[i].item(), i))
    same = torch.tensor([[0.0, 0.0, 9.0, 9.0]] * 4)
    assert nms(same, torch.full((4,), 0.5), 0.3).tolist() == [0]


def test_boxlist_nms_cap_takes_the_first_survivors_in_index_order():
    boxes, scores = hand_built_class()
    boxlist = BoxList(boxes[:, 1], (200, 20))
    boxlist.add_field("scores", scores[:, 1])
    kept, keep = boxlist_nms(boxlist, 0.3, max_proposals=3)
    assert keep.tolist() == [0, 1, 3]
    assert torch.equal(kept.bbox, boxes[[0, 1, 3], 1])


def test_rpn_level_cut_keeps_the_first_survivors_in_objectness_order():
    # Seven anchors in a row; 3 repeats 1 with the same logit, 6 repeats 2 with a higher one.
    anchors = torch.tensor([[20.0 * k, 0.0, 20.0 * k + 9, 9.0] for k in range(5)])[[0, 1, 2, 1, 3, 4, 2]]
    logits = torch.tensor([0.0, 3.0, 1.0, 3.0, 2.0, -1.0, 2.5])
    rpn = RPNPostProcessor(pre_nms_top_n=5, post_nms_top_n=2, nms_thresh=0.7, min_size=0)
    (proposals,) = rpn.forward_for_single_feature_map([BoxList(anchors, (200, 20))], logits.view(1, 1, 1, 7),
                                                      torch.zeros(1, 4, 1, 7))
    # Top 5 by objectness: 1 and 3 (tied, same box), 6, 4, 2; NMS drops the repeat of 1 and
    # proposal 2 (under 6); of the three survivors the cut keeps the first two, the best two.
    assert torch.equal(proposals.bbox, anchors[[1, 6]])
    assert torch.equal(proposals.get_field("objectness"), torch.sigmoid(logits[[1, 6]]))


def level_merged(objectness):
    boxlist = BoxList(torch.tensor([[20.0 * k, 0.0, 20.0 * k + 9, 9.0] for k in range(len(objectness))]), (200, 20))
    boxlist.add_field("objectness", torch.tensor(objectness))
    return boxlist


@pytest.mark.parametrize("training,per_batch", [(True, True), (True, False), (False, True)])
def test_fpn_cut_per_batch_keeps_level_order_and_per_image_sorts(training, per_batch):
    # Each image is its levels' survivors merged in level order; image 1 has a tie.
    images = [[0.9, 0.2, 0.8, 0.95, 0.1, 0.05], [0.3, 0.85, 0.85]]
    rpn = RPNPostProcessor(pre_nms_top_n=10, post_nms_top_n=10, nms_thresh=0.7, min_size=0,
                           fpn_post_nms_top_n=5, fpn_post_nms_per_batch=per_batch).train(training)
    out = rpn.select_over_all_levels([level_merged(o) for o in images])
    if training and per_batch:  # the batch's best five, each image in its merged-level order
        expected = [[0.9, 0.8, 0.95], [0.85, 0.85]]
    else:  # each image's best five, by decreasing objectness
        expected = [[0.95, 0.9, 0.8, 0.2, 0.1], [0.85, 0.85, 0.3]]
    for boxlist, objectness in zip(out, expected):
        assert torch.equal(boxlist.get_field("objectness"), torch.tensor(objectness))


def test_sgdet_object_nms_order_ties_and_threshold():
    # Boxes 0 and 1 overlap with legacy IoU exactly 0.5 (100 / 200), box 2 is apart; rows 0 and 1 tie.
    base = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 19.0], [50.0, 50.0, 59.0, 59.0]])
    boxes = base[:, None].expand(3, 3, 4)
    logits = torch.tensor([[0.0, 2.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.5, 1.5]])
    # Box 0 takes class 1 first (lowest index of the tie) and, at IoU >= 0.5, takes it from box 1.
    assert obj_prediction_nms(boxes, logits, 0.5).tolist() == [1, 2, 2]
    assert obj_prediction_nms(boxes, logits, 0.51).tolist() == [1, 1, 2]
    assert obj_prediction_nms(boxes[[1, 0, 2]], logits, 0.5).tolist() == [1, 2, 2]
    # With a single foreground class, the box that lost it is left with label 0 (score 0).
    assert obj_prediction_nms(boxes[:2, :2], logits[:2, :2], 0.5).tolist() == [1, 0]
