"""The SGG evaluator gives the Scene-Graph-Benchmark evaluator's numbers on the golden fixtures.

``<shared>/fixtures/sgg_eval/public/{predcls,sgcls,sgdet}`` hold synthetic GT and
predictions and what the benchmark's own ``sgg_eval.py`` / ``vg_eval.py``
produced on them. Every relation metric, per-predicate value and per-image
recall must agree within 1e-9; detection mAP50 within 1e-6 (ann ids from 1 by
default, from 0 with the legacy switch, where the 12 COCO stats must agree too).
"""
from __future__ import annotations

import json
from typing import Any, Dict

import numpy as np
import pytest

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.vg.fixture import fixture_mode, iter_fixture, load_fixture
from shared_data import require_shared

MODES = ("predcls", "sgcls", "sgdet")
RELATION_KEYS = ("R@K", "ngR@K", "mR@K", "ng-mR@K", "zR@K", "ng-zR@K", "A@K")
TOL = 1e-9


def _close(mine: Any, golden: Any, what: str) -> None:
    if golden is None:
        assert mine is None, f"{what}: expected None, got {mine}"
    else:
        assert mine is not None and abs(mine - golden) <= TOL, f"{what}: {mine} != {golden}"


def _evaluate(npz: str, **kwargs: Any) -> SGGEvaluator:
    fixture = load_fixture(npz)
    evaluator = SGGEvaluator(fixture_mode(npz), num_predicates=50, zeroshot_triplets=fixture["zeroshot_triplets"],
                             **kwargs)
    for index, groundtruth, prediction in iter_fixture(fixture):
        evaluator.add(groundtruth, prediction, image_id=index)
    return evaluator


@pytest.fixture(scope="module", params=MODES)
def case(request) -> Dict[str, Any]:
    """Golden file, metadata and this evaluator's result (per-image records kept) for one mode."""
    folder = require_shared("fixtures", "sgg_eval", "public")
    npz = str(folder / f"{request.param}.npz")
    evaluator = _evaluate(npz, keep_per_image=True)
    return {
        "mode": request.param,
        "npz": npz,
        "golden": json.loads((folder / f"{request.param}.golden.json").read_text()),
        "meta": json.loads((folder / f"{request.param}.json").read_text()),
        "evaluator": evaluator,
        "result": evaluator.result(),
    }


def _per_image(case: Dict[str, Any]) -> Dict[int, Dict[str, Any]]:
    return {record["image"]: record for record in case["result"]["per_image"]}


def test_relation_metrics_equal_golden(case):
    for key in RELATION_KEYS:
        for k, golden in case["golden"]["metrics"][key].items():
            _close(case["result"]["metrics"][key][k], golden, f"{case['mode']} {key}@{k}")


def test_per_predicate_lists_equal_golden(case):
    golden = case["golden"]["per_predicate"]
    mine = case["result"]["per_predicate"]
    for key in ("mR", "ng-mR"):
        for k, values in golden[key].items():
            np.testing.assert_allclose(mine[key][k], values, rtol=0, atol=TOL, err_msg=f"{key}@{k}")
    assert mine["images_per_predicate"] == golden["images_per_predicate"]


def test_counts_and_pair_accuracy_sums_equal_golden(case):
    golden, mine = case["golden"], case["result"]
    assert mine["num_images_evaluated"] == golden["num_images_evaluated"]
    assert mine["num_images_zeroshot"] == golden["num_images_zeroshot"]
    if case["mode"] == "sgdet":
        assert mine["pair_accuracy_detail"] is None
    else:
        for key in ("hit_sum", "count_sum"):
            assert mine["pair_accuracy_detail"][key] == golden["pair_accuracy_detail"][key]


def test_per_image_recalls_equal_golden(case):
    golden = case["golden"]["per_image"]
    mine = _per_image(case)
    assert sorted(mine) == golden["image"]
    for i, image in enumerate(golden["image"]):
        for key in ("R@K", "ngR@K"):
            np.testing.assert_allclose(mine[image][key], golden[key][i], rtol=0, atol=TOL, err_msg=f"{image} {key}")
        for key in ("predicate_recall", "ng_predicate_recall"):
            assert mine[image][key].keys() == golden[key][i].keys()
            for predicate, values in golden[key][i].items():
                np.testing.assert_allclose(mine[image][key][predicate], values, rtol=0, atol=TOL)
    zeroshot = [image for image in sorted(mine) if mine[image]["zR@K"] is not None]
    assert zeroshot == golden["zeroshot_image"]
    for i, image in enumerate(zeroshot):
        np.testing.assert_allclose(mine[image]["zR@K"], golden["zR@K"][i], rtol=0, atol=TOL)
        np.testing.assert_allclose(mine[image]["ng-zR@K"], golden["ng-zR@K"][i], rtol=0, atol=TOL)
    accuracy = [image for image in sorted(mine) if mine[image]["A_hits@K"] is not None]
    assert accuracy == golden["accuracy_image"]
    for i, image in enumerate(accuracy):
        assert mine[image]["A_hits@K"] == golden["A_hits@K"][i]
        assert mine[image]["A_count"] == golden["A_count"][i]


def test_detection_map50_numbers_annotations_from_1_by_default(case):
    detection = case["result"]["detection"]
    assert detection["legacy_ann_ids"] is False
    assert abs(detection["mAP50"] - case["golden"]["detection"]["diagnostic_mAP50_ann_ids_from_1"]) <= 1e-6


@pytest.mark.parametrize("matcher", ["vectorised", "pycocotools"])
def test_detection_legacy_ann_ids_reproduce_reference(case, matcher):
    """TEST.COCO_LEGACY_ANN_IDS: ids from 0, the benchmark's mAp and all 12 COCO stats."""
    detection = case["evaluator"].boxes.evaluate(legacy_ann_ids=True, matcher=matcher)
    golden = case["golden"]["detection"]
    assert abs(detection["mAP50"] - golden["mAP50"]) <= 1e-6
    np.testing.assert_allclose(detection["coco_stats"], golden["coco_stats"], rtol=0, atol=1e-6)


def test_predcls_legacy_quirk_loses_first_box(case):
    """PredCls boxes are exact, so only the id-0 quirk keeps mAP50 below 1."""
    if case["mode"] != "predcls":
        pytest.skip("the quirk only shows in predcls on these fixtures")
    assert case["result"]["detection"]["mAP50"] == 1.0
    assert case["evaluator"].boxes.evaluate(legacy_ann_ids=True)["mAP50"] < 1.0


def test_log_lines_reproduce_reference_log(case):
    """With the legacy ids the benchmark's log block is reproduced line for line; the only
    additions are the Mean@K and F@K rows (no training counts -> no head/body/tail rows)."""
    lines = _evaluate(case["npz"], legacy_coco_ann_ids=True).log_lines()
    reference = [line for line in case["golden"]["reference_log"].split("\n") if line]
    added = [line for line in lines if line not in reference]
    assert [line for line in lines if line in reference] == reference
    assert len(added) == 2 and all(" Mean @ " in line or "    F @ " in line for line in added), added


@pytest.mark.parametrize("kind", ["perfect", "two_objects", "non_overlapping_pairs", "duplicate_triplets",
                                  "border_boxes", "single_relation", "all_zeroshot", "no_relations"])
def test_named_edge_case_images(case, kind):
    """Each edge-case image of the fixture (listed in its .json) gets the golden per-image values."""
    images = [e["image"] for e in case["meta"]["edge_cases"] if e["kind"] == kind]
    assert images, f"no {kind} image in {case['mode']}"
    golden = case["golden"]["per_image"]
    mine = _per_image(case)
    for image in images:
        if kind == "no_relations":
            assert image not in mine and image not in golden["image"]
            continue
        i = golden["image"].index(image)
        np.testing.assert_allclose(mine[image]["R@K"], golden["R@K"][i], rtol=0, atol=TOL)
        np.testing.assert_allclose(mine[image]["ngR@K"], golden["ngR@K"][i], rtol=0, atol=TOL)
        if kind == "all_zeroshot":
            assert mine[image]["zR@K"] is not None


@pytest.mark.parametrize("stat", ["images_with_duplicate_triplets", "images_with_multilabel_pairs"])
def test_duplicate_and_multilabel_images(case, stat):
    """Duplicate GT triplets count in numerator and denominator; a multi-label pair gives at
    most one graph-constrained hit: those images match the golden recalls."""
    golden = case["golden"]["per_image"]
    mine = _per_image(case)
    images = [i for i in case["meta"]["stats"][stat] if i in mine]
    assert images
    for image in images:
        i = golden["image"].index(image)
        np.testing.assert_allclose(mine[image]["R@K"], golden["R@K"][i], rtol=0, atol=TOL)
        np.testing.assert_allclose(mine[image]["ngR@K"], golden["ngR@K"][i], rtol=0, atol=TOL)


def test_predicates_seen_once_and_absent(case):
    """Predicates seen once get their single image's recall; absent predicates count as 0 in mR."""
    stats = case["meta"]["stats"]
    mine = case["result"]["per_predicate"]["mR"]["100"]
    golden = case["golden"]["per_predicate"]["mR"]["100"]
    for predicate in stats["predicates_once"]:
        assert abs(mine[predicate - 1] - golden[predicate - 1]) <= TOL
    for predicate in stats["predicates_absent"]:
        assert mine[predicate - 1] == 0.0
    assert abs(sum(mine) / 50 - case["result"]["metrics"]["mR@K"]["100"]) <= TOL


@pytest.mark.parametrize("kind", ["no_match", "iou_exact_threshold"])
def test_sgdet_edge_cases(case, kind):
    """SGDet: an image whose detections match nothing, one whose boxes sit at IoU exactly 0.5."""
    if case["mode"] != "sgdet":
        pytest.skip("sgdet-only edge case")
    images = [e["image"] for e in case["meta"]["edge_cases"] if e["kind"] == kind]
    golden = case["golden"]["per_image"]
    mine = _per_image(case)
    for image in images:
        i = golden["image"].index(image)
        np.testing.assert_allclose(mine[image]["R@K"], golden["R@K"][i], rtol=0, atol=TOL)
        np.testing.assert_allclose(mine[image]["ngR@K"], golden["ngR@K"][i], rtol=0, atol=TOL)
