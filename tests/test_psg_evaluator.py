"""PSGEvaluator: OpenPSG's rule, mask IoU >= 0.5 for subject and object when both sides have masks."""
import numpy as np
import torch

from maskrcnn_benchmark.data.datasets.evaluation import PSGEvaluator, SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.psg_evaluator import mask_iou
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _masks():
    """Two people as the two triangles of one 10x10 square (same box, disjoint masks) and a road below."""
    masks = np.zeros((3, 16, 10), dtype=bool)
    rows, cols = np.indices((10, 10))
    masks[0, :10][cols <= rows] = True
    masks[1, :10][cols > rows] = True
    masks[2, 12:] = True
    return masks


def _groundtruth(with_masks=True):
    gt = BoxList(torch.tensor([[0, 0, 9, 9], [0, 0, 9, 9], [0, 12, 9, 15]], dtype=torch.float32), (10, 16))
    gt.add_field("labels", torch.tensor([1, 1, 2]))
    gt.add_field("relation_tuple", torch.tensor([[0, 2, 1]]))  # the lower-left person on the road
    if with_masks:
        gt.add_field("masks", torch.from_numpy(_masks()))
    return gt


def _prediction(pair, masks):
    """SGDet prediction with the GT boxes and labels, one relation ``pair`` with predicate 1."""
    pred = BoxList(_groundtruth().bbox.clone(), (10, 16))
    pred.add_field("pred_labels", torch.tensor([1, 1, 2]))
    pred.add_field("pred_scores", torch.ones(3))
    pred.add_field("rel_pair_idxs", torch.tensor([pair]))
    pred.add_field("pred_rel_scores", torch.tensor([[0.1, 0.9]]))
    if masks is not None:
        pred.add_field("masks", torch.from_numpy(masks))
    return pred


def _recall(groundtruth, prediction):
    evaluator = PSGEvaluator.from_evaluator(SGGEvaluator("sgdet", num_predicates=1))
    evaluator.add(groundtruth, prediction)
    result = evaluator.result()
    return result["metrics"]["R@K"], result["protocol"]["matching"]


def test_mask_iou_by_hand():
    a = np.zeros((1, 2, 2), dtype=bool)
    a[0, 0] = True  # 2 pixels
    b = np.ones((2, 2, 2), dtype=bool)
    b[1] = False
    assert mask_iou(a, b).tolist() == [[0.5, 0.0]]  # 2 / 4, and 0 / 2


def test_masks_decide_where_boxes_cannot_tell_the_two_people_apart():
    swapped = _masks()[[1, 0, 2]]  # prediction 0 covers the other triangle
    recall, matching = _recall(_groundtruth(), _prediction([0, 2], swapped))
    assert recall["20"] == 0.0 and matching == {"mask_iou_images": 1, "box_iou_images": 0}
    recall, _ = _recall(_groundtruth(), _prediction([1, 2], swapped))
    assert recall["20"] == 1.0
    # without predicted masks the boxes (identical for the two people) decide: both pairs match
    recall, matching = _recall(_groundtruth(), _prediction([0, 2], None))
    assert recall["20"] == 1.0 and matching == {"mask_iou_images": 0, "box_iou_images": 1}
