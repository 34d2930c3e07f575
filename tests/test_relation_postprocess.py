"""Relation post-processor, SGDet label choice and relation losses (REFERENCE 3.10-3.11)."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from maskrcnn_benchmark.modeling.roi_heads.relation_head.inference import (RelationPostProcessor,
                                                                         obj_prediction_nms)
from maskrcnn_benchmark.modeling.roi_heads.relation_head.loss import (RelationLossComputation,
                                                                    label_smoothing_cross_entropy)
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _gt_proposal(num_boxes=4, num_classes=6):
    boxes = torch.tensor([[i * 10.0, 0, i * 10 + 8, 8] for i in range(num_boxes)])
    proposal = BoxList(boxes, (100, 100))
    proposal.add_field("labels", torch.arange(num_boxes) % (num_classes - 1) + 1)
    return proposal


def test_predcls_onehot_logits_give_gt_labels_with_score_one_and_sorted_triplets():
    torch.manual_seed(0)
    proposal = _gt_proposal()
    labels = proposal.get_field("labels")
    obj_logits = torch.full((4, 6), -1000.0)
    obj_logits[torch.arange(4), labels] = 1000.0
    pairs = torch.tensor(list(itertools.permutations(range(4), 2)))
    rel_logits = torch.randn(len(pairs), 5)
    out = RelationPostProcessor(use_gt_box=True, later_nms_pred_thres=0.3)([rel_logits], [obj_logits], [pairs],
                                                                           [proposal])[0]
    assert torch.equal(out.get_field("pred_labels"), labels)
    assert torch.allclose(out.get_field("pred_scores"), torch.ones(4))
    scores = out.get_field("pred_rel_scores")
    triple = scores[:, 1:].max(dim=1).values
    assert (triple[:-1] >= triple[1:]).all()
    assert torch.equal(out.get_field("pred_rel_labels"), scores[:, 1:].argmax(dim=1) + 1)
    # every input pair is kept, and each keeps its own probabilities
    probs = F.softmax(rel_logits, dim=-1)
    index = {tuple(p): i for i, p in enumerate(pairs.tolist())}
    for pair, row in zip(out.get_field("rel_pair_idxs").tolist(), scores):
        assert torch.allclose(row, probs[index[tuple(pair)]])
    assert torch.equal(out.bbox, proposal.bbox) and out.has_field("labels")


def test_sgcls_scores_multiply_object_confidences():
    proposal = _gt_proposal(num_boxes=2)
    obj_logits = torch.tensor([[5.0, 0.0, 2.0, 0, 0, 0], [0.0, 1.0, 0, 0, 3.0, 0]])
    pairs = torch.tensor([[0, 1], [1, 0]])
    rel_logits = torch.tensor([[0.0, 2.0, 1.0, 0, 0], [0.0, 0.0, 3.0, 0, 0]])
    out = RelationPostProcessor(True, 0.3)([rel_logits], [obj_logits], [pairs], [proposal])[0]
    obj_probs = F.softmax(obj_logits, -1)
    assert out.get_field("pred_labels").tolist() == [2, 4]  # background column ignored
    assert torch.allclose(out.get_field("pred_scores"), torch.stack([obj_probs[0, 2], obj_probs[1, 4]]))
    rel_probs = F.softmax(rel_logits, -1)
    expected = [rel_probs[i, 1:].max() * obj_probs[0, 2] * obj_probs[1, 4] for i in range(2)]
    first = 0 if expected[0] >= expected[1] else 1
    assert out.get_field("rel_pair_idxs")[0].tolist() == pairs[first].tolist()


def _reference_obj_nms(boxes_per_cls, logits, thresh):
    """Straightforward re-statement of the greedy rule, box by box in Python."""
    n, c = logits.shape
    probs = F.softmax(logits, 1).tolist()
    for row in probs:
        row[0] = 0.0

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = w * h
        area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)  # noqa: E731
        return inter / (area(a) + area(b) - inter)

    labels = [0] * n
    for _ in range(n):
        box, cls = max(((i, j) for i in range(n) for j in range(c)), key=lambda ij: probs[ij[0]][ij[1]])
        if labels[box] == 0:
            labels[box] = cls
        for other in range(n):
            if iou(boxes_per_cls[box][cls].tolist(), boxes_per_cls[other][cls].tolist()) >= thresh:
                probs[other][cls] = 0.0
        probs[box] = [-1.0] * c
    return labels


def test_obj_prediction_nms_matches_the_greedy_rule():
    torch.manual_seed(1)
    for _ in range(5):
        n, c = 7, 5
        base = torch.rand(n, 1, 2) * 50
        boxes = torch.cat([base, base + 10 + torch.rand(n, 1, 2) * 20], dim=2).expand(n, c, 4).clone()
        boxes += torch.rand(n, c, 4) * 3
        logits = torch.randn(n, c) * 2
        assert obj_prediction_nms(boxes, logits, 0.3).tolist() == _reference_obj_nms(boxes, logits, 0.3)


def test_sgdet_boxes_are_the_chosen_class_boxes():
    boxes_per_cls = torch.tensor([[[0, 0, 1, 1], [0, 0, 10, 10], [0, 0, 20, 20]],
                                  [[0, 0, 1, 1], [50, 50, 60, 60], [50, 50, 70, 70]]], dtype=torch.float32)
    proposal = BoxList(boxes_per_cls[:, 1], (100, 100))
    proposal.add_field("boxes_per_cls", boxes_per_cls)
    obj_logits = torch.tensor([[0.0, 1.0, 3.0], [0.0, 4.0, 1.0]])
    out = RelationPostProcessor(False, 0.3)([torch.zeros(2, 3)], [obj_logits], [torch.tensor([[0, 1], [1, 0]])],
                                            [proposal])[0]
    assert out.get_field("pred_labels").tolist() == [2, 1]
    assert out.bbox.tolist() == [[0, 0, 20, 20], [50, 50, 60, 60]]


def test_relation_losses():
    torch.manual_seed(0)
    proposal = _gt_proposal()
    rel_logits, obj_logits = torch.randn(5, 5), torch.randn(4, 6)
    rel_labels = torch.tensor([1, 0, 0, 3, 0])
    loss_rel, loss_obj = RelationLossComputation()([proposal], [rel_labels], [rel_logits], [obj_logits])
    assert torch.allclose(loss_rel, F.cross_entropy(rel_logits, rel_labels))
    assert torch.allclose(loss_obj, F.cross_entropy(obj_logits, proposal.get_field("labels")))
    smoothed = label_smoothing_cross_entropy(rel_logits, rel_labels, 0.01)
    target = torch.full((5, 5), 0.01 / 4)
    target[torch.arange(5), rel_labels] = 0.99
    assert torch.allclose(smoothed, -(F.log_softmax(rel_logits, -1) * target).sum(-1).mean())
    assert RelationLossComputation(0.01)([proposal], [rel_labels], [rel_logits], [obj_logits])[0] == smoothed


def test_relation_loss_class_weights_are_a_weighted_mean():
    """sum_n w[y_n] CE_n / sum_n w[y_n], e.g. for class-balanced training; not combinable with smoothing."""
    torch.manual_seed(0)
    proposal = _gt_proposal()
    rel_logits, obj_logits = torch.randn(5, 5), torch.randn(4, 6)
    rel_labels = torch.tensor([1, 0, 0, 3, 3])
    weights = torch.tensor([0.5, 2.0, 0.0, 4.0, 1.0])
    loss_rel, _ = RelationLossComputation(rel_class_weights=weights)([proposal], [rel_labels], [rel_logits],
                                                                     [obj_logits])
    per_pair = F.cross_entropy(rel_logits, rel_labels, reduction="none")
    expected = (weights[rel_labels] * per_pair).sum() / weights[rel_labels].sum()
    assert torch.allclose(loss_rel, expected)
    with pytest.raises(ValueError, match="label smoothing"):
        RelationLossComputation(0.01, weights)([proposal], [rel_labels], [rel_logits], [obj_logits])
