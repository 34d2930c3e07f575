"""The benchmark's evaluation rules on small hand-made images (REFERENCE_BEHAVIOUR.md items 1-8)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.vg.derived import derived_metrics, frequency_groups
from maskrcnn_benchmark.data.datasets.evaluation.vg.matching import TOP_N, no_graph_constraint
from maskrcnn_benchmark.structures.bounding_box import BoxList

BOXES = [[0, 0, 9, 9], [20, 20, 39, 39], [50, 0, 69, 29]]


def rel_scores(rows: Sequence[Dict[int, float]], background: float = 0.0) -> np.ndarray:
    """(len(rows), 51) score matrix from {predicate: score} per row."""
    out = np.zeros((len(rows), 51), dtype=np.float32)
    out[:, 0] = background
    for i, row in enumerate(rows):
        for predicate, score in row.items():
            out[i, predicate] = score
    return out


def image(gt_rels, pairs, scores, gt_boxes=BOXES, gt_labels=(1, 2, 3), pred_boxes=None, pred_labels=None,
          pred_scores=None, size=(100, 100)):
    """(groundtruth, prediction) BoxLists; the prediction defaults to the GT objects."""
    gt = BoxList(torch.tensor(gt_boxes, dtype=torch.float32), size)
    gt.add_field("labels", torch.tensor(gt_labels))
    gt.add_field("relation_tuple", torch.tensor(gt_rels, dtype=torch.int64).reshape(-1, 3))
    pred_boxes = gt_boxes if pred_boxes is None else pred_boxes
    pred = BoxList(torch.tensor(pred_boxes, dtype=torch.float32), size)
    pred.add_field("pred_labels", torch.tensor(gt_labels if pred_labels is None else pred_labels))
    pred.add_field("pred_scores", torch.ones(len(pred_boxes)) if pred_scores is None else torch.tensor(pred_scores))
    pred.add_field("rel_pair_idxs", torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2))
    pred.add_field("pred_rel_scores", torch.from_numpy(scores))
    return gt, pred


def evaluate(mode: str, *images, zeroshot: Optional[np.ndarray] = None) -> dict:
    evaluator = SGGEvaluator(mode, 50, zeroshot_triplets=zeroshot, keep_per_image=True)
    for i, (gt, pred) in enumerate(images):
        evaluator.add(gt, pred, image_id=i)
    return evaluator.result()


def test_multilabel_pair_gives_one_graph_constrained_hit():
    """GT (0,1,7), (0,1,7), (0,1,3): one predicate per row -> R = 2/3; ng takes both -> 1."""
    r = evaluate("predcls", image([[0, 1, 7], [0, 1, 7], [0, 1, 3]], [[0, 1]], rel_scores([{7: 0.6, 3: 0.3}])))
    assert r["metrics"]["R@K"]["20"] == pytest.approx(2 / 3)
    assert r["metrics"]["ngR@K"]["20"] == 1.0


def test_exact_tie_predicts_lowest_predicate():
    tie = rel_scores([{3: 0.4, 7: 0.4}])
    assert evaluate("predcls", image([[0, 1, 3]], [[0, 1]], tie))["metrics"]["R@K"]["100"] == 1.0
    assert evaluate("predcls", image([[0, 1, 7]], [[0, 1]], tie))["metrics"]["R@K"]["100"] == 0.0


def test_background_column_is_ignored():
    scores = rel_scores([{5: 0.05}], background=0.9)
    assert evaluate("predcls", image([[0, 1, 5]], [[0, 1]], scores))["metrics"]["R@K"]["20"] == 1.0


@pytest.mark.parametrize("y2, matched", [(4, True), (3, False)])
def test_iou_exactly_half_matches_under_plus_one_convention(y2, matched):
    """GT [0,0,9,9] vs detection [0,0,9,y2]: IoU 50/100 = 0.5 with the +1 width (0.44 without)."""
    gt_boxes = [[0, 0, 9, 9], [20, 20, 39, 39]]
    det_boxes = [[0, 0, 9, y2], [20, 20, 39, 39]]
    r = evaluate("sgdet", image([[0, 1, 5]], [[0, 1]], rel_scores([{5: 0.9}]), gt_boxes=gt_boxes,
                                gt_labels=(1, 2), pred_boxes=det_boxes, pred_labels=(1, 2), pred_scores=[0.9, 0.9]))
    assert r["metrics"]["R@K"]["20"] == (1.0 if matched else 0.0)


def test_label_mismatch_never_matches():
    r = evaluate("sgcls", image([[0, 1, 5]], [[0, 1]], rel_scores([{5: 0.9}]), pred_labels=(1, 9, 3),
                                pred_scores=[0.9, 0.9, 0.9]))
    assert r["metrics"]["R@K"]["100"] == 0.0 and r["metrics"]["ngR@K"]["100"] == 0.0


def test_mean_recall_divides_by_all_predicates():
    r = evaluate("predcls", image([[0, 1, 5]], [[0, 1]], rel_scores([{5: 0.9}])))
    assert r["metrics"]["mR@K"]["20"] == pytest.approx(1 / 50)
    per_predicate = r["per_predicate"]["mR"]["20"]
    assert per_predicate[4] == 1.0 and sum(per_predicate) == 1.0


def test_mean_recall_averages_per_image_values_of_a_predicate():
    """Predicate 5 recalled 1/2 in one image and 1/1 in another -> 0.75 (not 2/3)."""
    first = image([[0, 1, 5], [1, 2, 5]], [[0, 1], [1, 0]], rel_scores([{5: 0.9}, {5: 0.8}]))
    second = image([[0, 1, 5]], [[0, 1]], rel_scores([{5: 0.9}]))
    r = evaluate("predcls", first, second)
    assert r["per_predicate"]["mR"]["20"][4] == pytest.approx(0.75)
    assert r["per_predicate"]["images_per_predicate"][4] == 2


@pytest.mark.parametrize("triplet, zero_shot", [([1, 2, 5], True), ([1, 5, 2], False)])
def test_zero_shot_list_columns_are_subject_object_predicate(triplet, zero_shot):
    r = evaluate("predcls", image([[0, 1, 5]], [[0, 1]], rel_scores([{5: 0.9}])), zeroshot=np.array([triplet]))
    assert r["num_images_zeroshot"] == int(zero_shot)
    assert r["metrics"]["zR@K"]["20"] == (1.0 if zero_shot else None)


def test_pair_accuracy_keeps_only_gt_pairs():
    """The GT pair is ranked after 110 other rows: R@100 misses it, A@20 does not."""
    pairs = [[1, 2]] * 110 + [[0, 1]]
    scores = rel_scores([{9: 0.9}] * 110 + [{5: 0.5}])
    r = evaluate("predcls", image([[0, 1, 5]], pairs, scores))
    assert r["metrics"]["R@K"]["100"] == 0.0
    assert r["metrics"]["A@K"]["20"] == 1.0
    assert r["pair_accuracy_detail"]["hit_sum"]["20"] == 1.0


def test_graph_constrained_rows_are_not_resorted():
    """Row order is the post-processor's: a better-scored row after the first K does not count."""
    pairs = [[1, 2]] * 20 + [[0, 1]]
    scores = rel_scores([{9: 0.1}] * 20 + [{5: 0.9}])
    r = evaluate("predcls", image([[0, 1, 5]], pairs, scores))
    assert r["metrics"]["R@K"]["20"] == 0.0 and r["metrics"]["R@K"]["50"] == 1.0
    assert r["metrics"]["ngR@K"]["20"] == 1.0


def test_skipped_images_and_placeholder_pair():
    """No GT relation or no pair: skipped; the placeholder pair (0, 0) is a real row (recall 0)."""
    no_rel = image([], [[0, 1]], rel_scores([{5: 0.9}]))
    no_pair = image([[0, 1, 5]], np.zeros((0, 2)), rel_scores([]))
    placeholder = image([[0, 1, 5]], [[0, 0]], rel_scores([{5: 0.9}]))
    r = evaluate("predcls", no_rel, no_pair, placeholder)
    assert r["num_images"] == 3 and r["num_images_evaluated"] == 1
    assert r["num_images_skipped"] == {"no_gt_relation": 1, "no_candidate_pair": 1}
    assert r["metrics"]["R@K"]["20"] == 0.0
    assert r["detection"]["num_images"] == 3


def test_prediction_is_resized_to_the_gt_image_size():
    gt, pred = image([[0, 1, 5]], [[0, 1]], rel_scores([{5: 0.9}]), pred_scores=[0.9, 0.9, 0.9])
    half = pred.resize((50, 50))
    assert evaluate("sgdet", (gt, half))["metrics"]["R@K"]["20"] == 1.0


def test_two_objects_put_every_entry_in_the_no_graph_top_100():
    """2 objects x 2 pairs x 50 predicates = 100 entries, zero scores included."""
    r = evaluate("predcls", image([[0, 1, 5], [1, 0, 8]], [[0, 1], [1, 0]], rel_scores([{9: 0.9}, {9: 0.8}]),
                                  gt_boxes=BOXES[:2], gt_labels=(1, 2)))
    assert r["metrics"]["ngR@K"]["100"] == 1.0 and r["metrics"]["R@K"]["100"] == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_no_graph_top_entries_equal_a_full_stable_sort(seed):
    """Pruning rows by their best entry and partitioning give exactly the stable sort's top 100."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 400))
    scores = (rng.integers(0, 6 if seed % 2 else 1000, (rows, 51)) / 7).astype(np.float32)
    obj = (rng.integers(1, 4, 30) / 3).astype(np.float32)
    pairs = rng.integers(0, 30, (rows, 2))
    got_pairs, got_predicates = no_graph_constraint(pairs, scores, obj)
    full = (obj[pairs[:, 0]] * obj[pairs[:, 1]])[:, None] * scores[:, 1:]
    order = np.argsort(-full.ravel(), kind="stable")[:TOP_N]
    np.testing.assert_array_equal(got_pairs, pairs[order // 50])
    np.testing.assert_array_equal(got_predicates, order % 50 + 1)


def test_head_body_tail_are_frequency_thirds():
    counts = [0] + [100 - p for p in range(1, 51)]  # predicate 1 most frequent
    counts[50] = 1000  # predicate 50 moves to the head
    groups = frequency_groups(counts, 50)
    assert [len(groups[g]) for g in ("head", "body", "tail")] == [17, 17, 16]
    assert groups["head"][:3] == [50, 1, 2]
    assert groups["tail"][-1] == 49
    tied = frequency_groups([0] + [5] * 50, 50)
    assert tied["head"] == list(range(1, 18))
    with pytest.raises(ValueError, match="51 entries"):
        frequency_groups([1] * 50, 50)


def test_mean_and_f_at_k():
    metrics = {"R@K": {"20": 0.6, "50": None}, "mR@K": {"20": 0.2, "50": None}}
    per_predicate = {"20": [1.0, 0.0, 0.5], "50": [0.0, 0.0, 0.0]}
    groups = {"head": [1], "body": [2], "tail": [3]}
    out = derived_metrics(metrics, per_predicate, groups)
    assert out["Mean@K"]["20"] == pytest.approx(0.4)
    assert out["F@K"]["20"] == pytest.approx(2 * 0.6 * 0.2 / 0.8)
    assert out["Mean@K"]["50"] is None
    assert (out["mR-head@K"]["20"], out["mR-body@K"]["20"], out["mR-tail@K"]["20"]) == (1.0, 0.0, 0.5)
    assert derived_metrics({"R@K": {"20": 0.0}, "mR@K": {"20": 0.0}}, {"20": [0.0]}, None)["F@K"]["20"] == 0.0
