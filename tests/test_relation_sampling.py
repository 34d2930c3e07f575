"""Relation pair sampling rules (REFERENCE 3.8)."""
import numpy as np
import pytest
import torch

from maskrcnn_benchmark.modeling.roi_heads.relation_head.sampling import RelationSampler, sample_pairs
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _sampler(use_gt_box=True, batch=1024, pos=0.25, per_gt=4, require_overlap=False, test_overlap=False):
    return RelationSampler(positive_fraction=pos, batch_size_per_image=batch, num_sample_per_gt_rel=per_gt,
                           require_box_overlap=require_overlap, use_gt_box=use_gt_box,
                           test_require_overlap=test_overlap)


def _target(boxes, labels, rels, size=(100, 100)):
    target = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    target.add_field("labels", torch.tensor(labels))
    relation = torch.zeros((len(boxes), len(boxes)), dtype=torch.int64)
    for s, o, p in rels:
        relation[s, o] = p
    target.add_field("relation", relation, is_triplet=True)
    return target


def test_test_pairs_are_all_ordered_pairs_in_row_major_order():
    boxes = BoxList(torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [5, 5, 20, 20]], dtype=torch.float32), (100, 100))
    pairs = _sampler().prepare_test_pairs([boxes])[0]
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]


def test_test_pairs_single_box_gets_placeholder_pair():
    box = BoxList(torch.tensor([[0, 0, 10, 10]], dtype=torch.float32), (100, 100))
    assert _sampler().prepare_test_pairs([box])[0].tolist() == [[0, 0]]


def test_sgdet_test_pairs_with_overlap_requirement_keep_only_touching_boxes():
    boxes = BoxList(torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [5, 5, 20, 20]], dtype=torch.float32), (100, 100))
    pairs = _sampler(use_gt_box=False, test_overlap=True).prepare_test_pairs([boxes])[0]
    assert pairs.tolist() == [[0, 2], [2, 0]]
    # In GT-box modes the switch does not apply.
    assert len(_sampler(use_gt_box=True, test_overlap=True).prepare_test_pairs([boxes])[0]) == 6


def test_gtbox_sampling_labels_foreground_and_background():
    target = _target([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]],
                     [1, 2, 3, 4], [(0, 1, 5), (2, 3, 7)])
    labels, pairs, binarys = _sampler().gtbox_relsample([target], [target])
    labels, pairs, binary = labels[0], pairs[0], binarys[0]
    assert pairs[:2].tolist() == [[0, 1], [2, 3]] and labels[:2].tolist() == [5, 7]
    assert len(pairs) == 12  # every ordered pair exactly once
    assert len({tuple(p) for p in pairs.tolist()}) == 12
    bg = {tuple(p) for p in pairs[2:].tolist()}
    assert (1, 0) in bg and (0, 1) not in bg  # the reverse of a GT pair is background
    assert (labels[2:] == 0).all()
    assert torch.equal(binary, binary.t()) and binary.sum() == 4


def test_gtbox_sampling_caps_foreground_and_total():
    rels = [(i, (i + 1) % 6, 1 + i % 5) for i in range(6)] + [(i, (i + 2) % 6, 2) for i in range(4)]
    target = _target([[i * 10, 0, i * 10 + 5, 5] for i in range(6)], [1] * 6, rels)
    labels, pairs, _ = _sampler(batch=16, pos=0.25).gtbox_relsample([target], [target])
    assert len(pairs[0]) == 16
    assert int((labels[0] > 0).sum()) == 4  # int(16 * 0.25) of the 10 annotated pairs
    annotated = {(s, o): p for s, o, p in rels}
    for (s, o), label in zip(pairs[0].tolist(), labels[0].tolist()):
        assert annotated.get((s, o), 0) == label


def _detections(boxes, labels, size=(100, 100)):
    proposal = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    proposal.add_field("labels", torch.tensor(labels))
    return proposal


def test_detection_sampling_maps_gt_relations_onto_matching_detections():
    target = _target([[0, 0, 40, 40], [50, 50, 90, 90]], [3, 4], [(0, 1, 9)])
    # two detections on the subject, one on the object, one wrong-class on the object, one background
    proposal = _detections([[0, 0, 40, 40], [1, 1, 41, 41], [50, 50, 90, 90], [50, 50, 90, 90], [10, 60, 20, 70]],
                           [3, 3, 4, 2, 0])
    labels, pairs, binarys = _sampler(use_gt_box=False).detect_relsample([proposal], [target])
    rows = {(s, o): p for (s, o), p in zip(pairs[0].tolist(), labels[0].tolist())}
    assert {k for k, v in rows.items() if v > 0} == {(0, 2), (1, 2)}
    assert all(v == 9 for v in rows.values() if v > 0)
    assert all(4 not in k for k in rows)  # the background detection never enters a pair
    assert all(s != o for s, o in rows)
    binary = binarys[0]
    assert binary[0, 2] == binary[2, 0] == binary[1, 2] == 1 and binary[3].sum() == 0


def test_detection_sampling_draws_at_most_num_sample_per_gt_rel_pairs():
    np.random.seed(0)
    torch.manual_seed(0)
    target = _target([[0, 0, 40, 40], [50, 50, 90, 90]], [3, 4], [(0, 1, 9)])
    boxes = [[i, i, 40 + i, 40 + i] for i in range(4)] + [[50 + i, 50, 90 + i, 90] for i in range(4)]
    proposal = _detections(boxes, [3] * 4 + [4] * 4)
    labels, pairs, _ = _sampler(use_gt_box=False, per_gt=4).detect_relsample([proposal], [target])
    fg = pairs[0][labels[0] > 0].tolist()
    assert len(fg) == 4 and len({tuple(p) for p in fg}) == 4
    assert all(s < 4 <= o for s, o in fg)


def test_detection_sampling_with_overlap_requirement_and_empty_image():
    target = _target([[0, 0, 10, 10], [80, 80, 90, 90]], [1, 2], [(0, 1, 3)])
    proposal = _detections([[0, 0, 10, 10], [80, 80, 90, 90]], [1, 2])
    labels, pairs, _ = _sampler(use_gt_box=False, require_overlap=True).detect_relsample([proposal], [target])
    # the GT pair is foreground; the reverse pair does not overlap, so no background is left
    assert pairs[0].tolist() == [[0, 1]] and labels[0].tolist() == [3]
    background_only = _detections([[0, 0, 10, 10], [80, 80, 90, 90]], [0, 0])
    labels, pairs, _ = _sampler(use_gt_box=False).detect_relsample([background_only], [target])
    assert pairs[0].tolist() == [[0, 0]] and labels[0].tolist() == [0]


def test_sample_pairs_dispatch():
    target = _target([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2], [(0, 1, 3)])
    labels, pairs, binarys = sample_pairs(_sampler(), [target], None, training=False)
    assert labels is None and binarys is None and len(pairs[0]) == 2
    with pytest.raises(ValueError, match="targets"):
        sample_pairs(_sampler(), [target], None, training=True)
