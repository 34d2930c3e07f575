"""Hierarchy metrics (HR, mHR, gHR, TOR_p, TOR_p+, POR_p, the coarse/fine confusion) on toy trees.

Each metric has a hand-computed example; the sanity properties of HIERARCHY.md D1.6
hold on random images; HR, gHR and TOR_p are re-stated in plain loops and compared.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.vg.inputs import ImageInputs
from maskrcnn_benchmark.structures.predicate_hierarchy import (
    COARSEN, CROSS_BRANCH, EXACT, REFINE, SIBLING, HierarchyError, PredicateHierarchy, links_from_list)

NAMES = ["__background__", "on", "sitting on", "standing on", "has", "wearing", "holding", "near"]
LINKS = {"sitting on": "on", "standing on": "on", "wearing": "has", "holding": "has"}
ID = {name: i for i, name in enumerate(NAMES)}
KS = ("20", "50", "100")


def toy_hierarchy(links=LINKS) -> PredicateHierarchy:
    return PredicateHierarchy.from_links(NAMES, links)


def grid_boxes(count: int) -> np.ndarray:
    """Disjoint 10x10 boxes on a row (IoU 0 between any two)."""
    x = np.arange(count, dtype=np.float32) * 20
    return np.stack([x, np.zeros(count, np.float32), x + 10, np.full(count, 10, np.float32)], axis=1)


def one_row(best: int, value: float = 0.6, others=None) -> np.ndarray:
    row = np.full(len(NAMES), 0.01, dtype=np.float32)
    for pid, v in (others or {}).items():
        row[pid] = v
    row[best] = value
    return row


def image(gt_rels, rows, num_boxes=6) -> ImageInputs:
    """PredCls-style inputs: GT boxes reused as predictions, ``rows`` = [(subject, object, score row)]."""
    boxes = grid_boxes(num_boxes)
    labels = np.arange(1, num_boxes + 1, dtype=np.int64)
    return ImageInputs(gt_boxes=boxes, gt_labels=labels, gt_rels=np.asarray(gt_rels, dtype=np.int64).reshape(-1, 3),
                       pred_boxes=boxes, pred_labels=labels, pred_scores=np.ones(num_boxes, np.float32),
                       rel_pairs=np.asarray([r[:2] for r in rows], dtype=np.int64).reshape(-1, 2),
                       rel_scores=np.stack([r[2] for r in rows]).astype(np.float32))


def evaluate(images, hierarchy=None, weights=(0.5, 0.5), mode="predcls"):
    evaluator = SGGEvaluator(mode, num_predicates=len(NAMES) - 1, predicate_names=NAMES[1:],
                             hierarchy=hierarchy if hierarchy is not None else toy_hierarchy(),
                             graded_weights=weights)
    for index, inputs in enumerate(images):
        evaluator.add_inputs(inputs, image_id=index)
    return evaluator.result()


def hand_example() -> ImageInputs:
    """GT: (0,1) on [coarse], (2,3) sitting on, (4,5) wearing. Rows: (0,1) refines to sitting on,
    (2,3) coarsens to on, then 20 filler rows, then (4,5) predicts the sibling holding."""
    gt = [(0, 1, ID["on"]), (2, 3, ID["sitting on"]), (4, 5, ID["wearing"])]
    rows = [(0, 1, one_row(ID["sitting on"], 0.6, {0: 0.1, ID["on"]: 0.3})),
            (2, 3, one_row(ID["on"], 0.5, {0: 0.2, ID["standing on"]: 0.3}))]
    gt_pairs = {(0, 1), (2, 3), (4, 5)}
    filler = [(s, o) for s in range(6) for o in range(6) if s != o and (s, o) not in gt_pairs][:20]
    rows += [(s, o, one_row(ID["near"], 0.4)) for s, o in filler]
    rows.append((4, 5, one_row(ID["holding"], 0.7, {0: 0.1, ID["wearing"]: 0.2})))
    return image(gt, rows)


# ---------------------------------------------------------------- the hierarchy
def test_relation_table_kinds():
    table = toy_hierarchy().relation_table()
    assert table[ID["on"], ID["on"]] == EXACT
    assert table[ID["on"], ID["sitting on"]] == REFINE
    assert table[ID["sitting on"], ID["on"]] == COARSEN
    assert table[ID["sitting on"], ID["standing on"]] == SIBLING
    assert table[ID["on"], ID["wearing"]] == CROSS_BRANCH  # a child of another coarse predicate
    assert table[ID["sitting on"], ID["has"]] == CROSS_BRANCH
    assert table[ID["near"], ID["on"]] == CROSS_BRANCH
    assert table[ID["on"], ID["has"]] == CROSS_BRANCH
    parent = np.asarray(toy_hierarchy().parent)
    g, p = np.nonzero(table == REFINE)
    assert (parent[p] == g).all() and (parent[g] == g).all()  # refine: p is a child of a coarse g, nothing else


def test_bad_links_name_the_predicate():
    with pytest.raises(HierarchyError, match="'sittin on'"):
        PredicateHierarchy.from_links(NAMES, {"sittin on": "on"})
    with pytest.raises(HierarchyError, match="two levels"):
        PredicateHierarchy.from_links(NAMES, {"sitting on": "on", "on": "near"})
    with pytest.raises(HierarchyError, match="its own parent"):
        PredicateHierarchy.from_links(NAMES, {"on": "on"})
    with pytest.raises(HierarchyError, match="fine=coarse"):
        links_from_list("sitting on>on")
    with pytest.raises(HierarchyError, match="two parents"):
        links_from_list("sitting on=on, sitting on=has")


def test_tree_file_round_trip_and_dictionary_check(tmp_path):
    path = tmp_path / "tree.json"
    path.write_text(json.dumps({"predicates": NAMES, "parents": LINKS}))
    hierarchy = PredicateHierarchy.from_json(str(path), NAMES)
    assert hierarchy.links() == {name: LINKS[name] for name in NAMES if name in LINKS}
    assert hierarchy.coarse_ids() == [ID["on"], ID["has"], ID["near"]]
    with pytest.raises(HierarchyError, match=f"{path}: predicate 7 is 'near' in the tree but 'next to'"):
        PredicateHierarchy.from_json(str(path), NAMES[:-1] + ["next to"])
    path.write_text(json.dumps({"predicates": NAMES}))
    with pytest.raises(HierarchyError, match="no 'parents'"):
        PredicateHierarchy.from_json(str(path), NAMES)


# ------------------------------------------------------- hand-computed example
def test_hand_computed_example():
    result = evaluate([hand_example()])
    m = result["metrics"]
    assert m["R@K"] == {"20": 0.0, "50": 0.0, "100": 0.0}
    assert m["HR@K"] == pytest.approx({"20": 1 / 3, "50": 1 / 3, "100": 1 / 3})
    # gHR: refine 1 + coarsen 0.5 (+ sibling 0.5 only once (4,5), at rank 23, is inside K)
    assert m["gHR@K"] == pytest.approx({"20": 1.5 / 3, "50": 2 / 3, "100": 2 / 3})
    # mHR: only "on" (1 of 1) is recalled; the other 6 predicates count 0
    assert m["mHR@K"] == pytest.approx({k: 1 / 7 for k in KS})
    # TOR_p: only (2,3) (on lies on Path(sitting on)); TOR_p+ adds the refinement of (0,1)
    assert m["TOR_p@K"] == pytest.approx({k: 1 / 3 for k in KS})
    assert m["TOR_p+@K"] == pytest.approx({k: 2 / 3 for k in KS})
    # POR_p: (0,1) y1 = on (0.3 + 0.6) -> 1; (2,3) y1 = on, y2 = standing on -> 1/2; (4,5) y1 = has, y2 = holding -> 1/2
    assert m["POR_p@K"] == pytest.approx({"20": 1.5 / 3, "50": 2 / 3, "100": 2 / 3})
    # per class: on 1, sitting on 1/2, wearing 1/2 (at 50)
    assert m["mPOR_p@K"]["50"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["mTOR_p@K"]["50"] == pytest.approx(1 / 3)
    confusion = result["hierarchy"]["confusion"]
    assert confusion["50"]["coarse_annotated"]["counts"]["refine"] == 1
    assert confusion["50"]["fine_annotated"]["counts"] == {
        "exact": 0, "refine": 0, "coarsen": 1, "sibling": 1, "cross_branch": 0, "background": 0}
    assert confusion["20"]["fine_annotated"]["matched"] == 1  # (4,5) is ranked below 20
    assert confusion["50"]["per_parent"]["on"]["counts"]["refine"] == 1
    assert confusion["50"]["per_parent"]["on"]["counts"]["coarsen"] == 1
    assert confusion["50"]["per_parent"]["has"]["counts"]["sibling"] == 1
    rates = result["hierarchy"]["rates"]["50"]
    assert rates["RefineRate"] == 1.0 and rates["CoarsenRate"] == 0.5 and rates["SiblingConfusion"] == 0.5
    assert result["hierarchy"]["graded_weights"] == {"coarsen": 0.5, "sibling": 0.5}


def test_graded_weights_change_only_ghr():
    base = evaluate([hand_example()])["metrics"]
    other = evaluate([hand_example()], weights=(0.25, 0.0))["metrics"]
    assert other["gHR@K"]["50"] == pytest.approx((1 + 0.25) / 3)
    assert {k: v for k, v in other.items() if k != "gHR@K"} == {k: v for k, v in base.items() if k != "gHR@K"}


def test_background_bucket_and_cross_branch():
    gt = [(0, 1, ID["sitting on"]), (2, 3, ID["on"])]
    rows = [(0, 1, one_row(ID["standing on"], 0.3, {0: 0.6})),  # background wins over the fine argmax
            (2, 3, one_row(ID["wearing"], 0.8))]  # a child of has for a coarse on: cross-branch, no refine
    result = evaluate([image(gt, rows)])
    confusion = result["hierarchy"]["confusion"]["100"]
    assert confusion["fine_annotated"]["counts"]["background"] == 1
    assert confusion["coarse_annotated"]["counts"]["cross_branch"] == 1
    assert result["metrics"]["HR@K"]["100"] == 0.0
    assert result["metrics"]["TOR_p+@K"]["100"] == 0.0


# ------------------------------------------------------------ plain re-statement
def random_images(rng: np.random.Generator, count: int, predicates, num_boxes=6, jitter=0.0):
    """Images with random GT relations over ``predicates`` and all ordered pairs in random order."""
    images = []
    for _ in range(count):
        pairs = [(s, o) for s in range(num_boxes) for o in range(num_boxes) if s != o]
        chosen = rng.choice(len(pairs), size=int(rng.integers(1, 6)), replace=False)
        gt = [(*pairs[i], int(rng.choice(predicates))) for i in chosen]
        order = rng.permutation(len(pairs))
        scores = rng.dirichlet(np.full(len(NAMES), 0.3), size=len(pairs)).astype(np.float32)
        inputs = image(gt, [(*pairs[i], scores[j]) for j, i in enumerate(order)], num_boxes)
        if jitter:
            inputs.pred_boxes = inputs.gt_boxes + rng.uniform(-jitter, jitter, inputs.gt_boxes.shape).astype(np.float32)
        images.append(inputs)
    return images


def plain_metrics(images, hierarchy, weights=(0.5, 0.5), iou=0.5):
    """HR, gHR (image means) and TOR_p (pooled) at each K, in loops; PredCls labels; IoU as the evaluator."""
    from maskrcnn_benchmark.data.datasets.evaluation.vg.matching import legacy_iou
    parent = hierarchy.parent
    out = {"HR": {k: 0.0 for k in KS}, "gHR": {k: 0.0 for k in KS}, "TOR": {k: 0.0 for k in KS}}
    total_gt = 0
    for inputs in images:
        ious = legacy_iou(inputs.gt_boxes, inputs.pred_boxes)
        predicted = [int(np.argmax(row[1:])) + 1 for row in inputs.rel_scores[:100]]
        for k in KS:
            hr = ghr = 0.0
            for s, o, g in inputs.gt_rels:
                best, tor_done, hit = 0.0, False, False
                for rank, ((ps, po), p) in enumerate(zip(inputs.rel_pairs[:100], predicted)):
                    if rank >= int(k):
                        break
                    if not (ious[s, ps] >= iou and ious[o, po] >= iou and inputs.gt_labels[s] == inputs.pred_labels[ps]
                            and inputs.gt_labels[o] == inputs.pred_labels[po]):
                        continue
                    g_fine, p_fine = parent[g] != g, parent[p] != p
                    if p == g or (not g_fine and p_fine and parent[p] == g):
                        credit = 1.0
                        hit = True
                    elif g_fine and p == parent[g]:
                        credit = weights[0]
                    elif g_fine and p_fine and parent[p] == parent[g]:
                        credit = weights[1]
                    else:
                        credit = 0.0
                    best = max(best, credit)
                    if not tor_done:
                        out["TOR"][k] += float(p == g or (g_fine and p == parent[g]))
                        tor_done = True
                hr += hit
                ghr += best
            out["HR"][k] += hr / len(inputs.gt_rels)
            out["gHR"][k] += ghr / len(inputs.gt_rels)
        total_gt += len(inputs.gt_rels)
    return {"HR": {k: v / len(images) for k, v in out["HR"].items()},
            "gHR": {k: v / len(images) for k, v in out["gHR"].items()},
            "TOR": {k: v / total_gt for k, v in out["TOR"].items()}}


@pytest.mark.parametrize("jitter", [0.0, 4.0])
def test_matches_plain_loops(jitter):
    rng = np.random.default_rng(3)
    images = random_images(rng, 12, predicates=range(1, len(NAMES)), num_boxes=7, jitter=jitter)
    hierarchy = toy_hierarchy()
    result = evaluate(images, hierarchy, mode="sgdet" if jitter else "predcls")["metrics"]
    expected = plain_metrics(images, hierarchy)
    for k in KS:
        assert result["HR@K"][k] == pytest.approx(expected["HR"][k], abs=1e-12)
        assert result["gHR@K"][k] == pytest.approx(expected["gHR"][k], abs=1e-12)
        assert result["TOR_p@K"][k] == pytest.approx(expected["TOR"][k], abs=1e-12)


# ------------------------------------------------------------ sanity properties
def test_sanity_properties_on_random_images():
    rng = np.random.default_rng(0)
    images = random_images(rng, 20, predicates=range(1, len(NAMES)), num_boxes=7)
    result = evaluate(images)
    m = result["metrics"]
    for k in KS:
        assert m["HR@K"][k] >= m["R@K"][k]
        assert m["TOR_p@K"][k] <= m["TOR_p+@K"][k]
        assert m["gHR@K"][k] >= m["HR@K"][k]
    for key in ("HR@K", "mHR@K", "gHR@K", "TOR_p@K", "TOR_p+@K", "POR_p@K"):
        assert m[key]["20"] <= m[key]["50"] <= m[key]["100"], key
    assert evaluate(images, weights=(0.0, 0.0))["metrics"]["gHR@K"] == pytest.approx(m["HR@K"])


def test_hr_equals_r_without_coarse_gt():
    rng = np.random.default_rng(1)
    fine = [ID[name] for name in LINKS]
    images = random_images(rng, 20, predicates=fine, num_boxes=7)
    m = evaluate(images)["metrics"]
    assert m["HR@K"] == m["R@K"]
    assert m["mHR@K"] == pytest.approx(m["mR@K"], abs=1e-15)


def test_tor_plus_equals_tor_when_coarse_gt_have_no_children():
    rng = np.random.default_rng(2)
    childless = [ID["near"]] + [ID[name] for name in LINKS]  # "near" is the only coarse GT, it has no child
    m = evaluate(random_images(rng, 20, predicates=childless, num_boxes=7))["metrics"]
    assert m["TOR_p@K"] == m["TOR_p+@K"]


def test_buckets_sum_to_matched_pairs():
    rng = np.random.default_rng(4)
    images = random_images(rng, 15, predicates=range(1, len(NAMES)), num_boxes=9)
    confusion = evaluate(images)["hierarchy"]["confusion"]
    for k in KS:
        matched = 0  # GT whose pair has a row among the first K (PredCls: the GT pair itself)
        for inputs in images:
            ranks = {(int(s), int(o)): r for r, (s, o) in enumerate(inputs.rel_pairs[:100])}
            matched += sum(ranks.get((int(s), int(o)), 10 ** 9) < int(k) for s, o, _ in inputs.gt_rels)
        rows = [confusion[k][kind] for kind in ("coarse_annotated", "fine_annotated")]
        assert sum(sum(row["counts"].values()) for row in rows) == matched
        assert sum(row["matched"] for row in rows) == matched
        assert sum(row["matched"] for row in confusion[k]["per_parent"].values()) == matched


def test_existing_metrics_unchanged_by_the_hierarchy():
    rng = np.random.default_rng(5)
    images = random_images(rng, 10, predicates=range(1, len(NAMES)), num_boxes=6)
    plain = SGGEvaluator("predcls", num_predicates=len(NAMES) - 1, predicate_names=NAMES[1:])
    for index, inputs in enumerate(images):
        plain.add_inputs(inputs, image_id=index)
    with_tree = evaluate(images)
    plain_result = plain.result()
    assert {k: with_tree["metrics"][k] for k in plain_result["metrics"]} == plain_result["metrics"]
    assert with_tree["per_predicate"] == plain_result["per_predicate"]
    assert "hierarchy" not in plain_result and "HR@K" not in plain_result["metrics"]


def test_log_lines_show_the_rows_and_the_confusion():
    evaluator = SGGEvaluator("predcls", num_predicates=len(NAMES) - 1, predicate_names=NAMES[1:],
                             hierarchy=toy_hierarchy(), hierarchy_source="toy.json")
    evaluator.add_inputs(hand_example(), image_id=0)
    text = "\n".join(evaluator.log_lines())
    assert "SGG eval:    HR @ 20: 0.3333;" in text
    assert "type=Graded Hierarchical Recall." in text
    assert "Hierarchy (toy.json): gHR weights coarsen=0.5, sibling=0.5" in text
    assert "parent on" in text
