"""SGGEvaluator from the config on a real VGDataset, its outputs, and the fixture tool."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.data.datasets.evaluation import SGGEvaluator, build_sgg_evaluator
from maskrcnn_benchmark.config.modes import mode_from_config
from maskrcnn_benchmark.data.datasets.evaluation.vg import load_zeroshot_triplets
from maskrcnn_benchmark.data.datasets.synthetic_vg import make_synthetic_vg
from maskrcnn_benchmark.data.datasets.visual_genome import VGDataset
from maskrcnn_benchmark.structures.predicate_hierarchy import HierarchyError, links_from_generator_info
from maskrcnn_benchmark.structures.bounding_box import BoxList
from shared_data import require_shared

TOOL = Path(__file__).resolve().parents[1] / "tools" / "sgg_eval_fixture.py"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> VGDataset:
    root = tmp_path_factory.mktemp("synthetic_vg")
    make_synthetic_vg(str(root), 40, 0)
    return VGDataset("test", str(root / "VG_100K"), str(root / "VG-SGG-with-attri.h5"),
                     str(root / "VG-SGG-dicts-with-attri.json"), str(root / "image_data.json"))


def _config(**overrides):
    config = cfg.clone()
    config.merge_from_list([item for key, value in overrides.items() for item in (key, value)])
    return config


def _perfect_prediction(groundtruth: BoxList, num_predicates: int) -> BoxList:
    """Every ordered pair of GT objects; GT predicates of a pair share 0.9, the rest is background."""
    num = len(groundtruth)
    sub, obj = np.nonzero(~np.eye(num, dtype=bool))
    scores = np.zeros((len(sub), num_predicates + 1), dtype=np.float32)
    scores[:, 0] = 1.0
    rels = groundtruth.get_field("relation_tuple").numpy()
    row = {(s, o): i for i, (s, o) in enumerate(zip(sub.tolist(), obj.tolist()))}
    for s, o, p in rels.tolist():
        scores[row[s, o], 0] = 0.0
        scores[row[s, o], p] = 0.9
    order = np.argsort(-scores[:, 1:].max(axis=1), kind="stable")
    pred = BoxList(groundtruth.bbox.clone(), groundtruth.size)
    pred.add_field("pred_labels", groundtruth.get_field("labels").clone())
    pred.add_field("pred_scores", torch.ones(num))
    pred.add_field("rel_pair_idxs", torch.from_numpy(np.stack([sub, obj], axis=1)[order]))
    pred.add_field("pred_rel_scores", torch.from_numpy(scores[order]))
    return pred


@pytest.mark.parametrize("use_gt_box, use_gt_label, mode", [(True, True, "predcls"), (True, False, "sgcls"),
                                                            (False, False, "sgdet")])
def test_mode_from_config(use_gt_box, use_gt_label, mode):
    config = _config(**{"MODEL.ROI_RELATION_HEAD.USE_GT_BOX": use_gt_box,
                        "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL": use_gt_label})
    assert mode_from_config(config) == mode


def test_build_from_config_and_evaluate_a_vg_dataset(dataset, tmp_path):
    zs_file = tmp_path / "zeroshot_triplet.pytorch"
    gt0 = dataset.get_groundtruth(0, evaluation=True)
    s, o, p = gt0.get_field("relation_tuple")[0].tolist()
    labels = gt0.get_field("labels")
    torch.save(torch.tensor([[int(labels[s]), int(labels[o]), p]]), zs_file)
    config = _config(**{"MODEL.ROI_RELATION_HEAD.USE_GT_BOX": True,
                        "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL": True,
                        "TEST.RELATION.ZEROSHOT_TRIPLETS": str(zs_file), "TEST.COCO_LEGACY_ANN_IDS": True,
                        "TEST.RELATION.IOU_THRESHOLD": 0.6, "TEST.RELATION.REQUIRE_OVERLAP": False})
    evaluator = build_sgg_evaluator(config, dataset)
    num_predicates = len(dataset.ind_to_predicates) - 1
    assert evaluator.mode == "predcls" and evaluator.num_predicates == num_predicates
    assert evaluator.predicate_names == dataset.ind_to_predicates[1:]
    assert sum(len(g) for g in evaluator.groups.values()) == num_predicates

    for index in range(len(dataset)):
        groundtruth = dataset.get_groundtruth(index, evaluation=True)
        evaluator.add(groundtruth, _perfect_prediction(groundtruth, num_predicates), image_id=index)
    evaluator.all_reduce()  # a no-op in one process
    result = evaluator.result()
    assert result["num_images"] == len(dataset)
    assert result["metrics"]["ngR@K"]["100"] == 1.0
    assert result["metrics"]["zR@K"]["100"] == 1.0
    assert result["num_images_zeroshot"] >= 1
    assert result["detection"]["legacy_ann_ids"] is True

    out = tmp_path / "inference" / "metrics.json"
    evaluator.write_json(str(out))
    written = json.loads(out.read_text())
    assert written["protocol"] == {
        "mode": "predcls",
        "graph_constraint": {"with": ["R@K", "mR@K", "zR@K", "A@K"], "without": ["ngR@K", "ng-mR@K", "ng-zR@K"]},
        "iou_threshold": 0.6, "multiple_preds": False, "require_overlap": False, "coco_legacy_ann_ids": True,
        "ks": [20, 50, 100], "num_predicates": num_predicates, "zeroshot_triplets": 1,
    }
    assert written["num_images_evaluated"] == result["num_images_evaluated"]
    assert len(written["per_predicate"]["mR"]["100"]) == num_predicates
    for key in ("Mean@K", "F@K", "mR-head@K", "mR-body@K", "mR-tail@K"):
        assert set(written["metrics"][key]) == {"20", "50", "100"}

    lines = evaluator.log_lines()
    assert lines[1].startswith("Detection evaluation mAp=")
    assert any(line.endswith("for mode=predcls, type=Recall(Main).") for line in lines)
    assert any("mR-tail @ 100" in line for line in lines)
    assert any(line.startswith(f"({dataset.ind_to_predicates[1]}:") for line in lines)


def test_sgdet_log_has_no_pair_accuracy_and_no_zero_shot_rows():
    evaluator = SGGEvaluator("sgdet", 3)
    box = torch.tensor([[0.0, 0.0, 9.0, 9.0], [20.0, 20.0, 29.0, 29.0]])
    gt = BoxList(box, (50, 50))
    gt.add_field("labels", torch.tensor([1, 2]))
    gt.add_field("relation_tuple", torch.tensor([[0, 1, 2]]))
    pred = BoxList(box, (50, 50))
    pred.add_field("pred_labels", torch.tensor([1, 2]))
    pred.add_field("pred_scores", torch.tensor([0.9, 0.8]))
    pred.add_field("rel_pair_idxs", torch.tensor([[0, 1], [1, 0]]))
    pred.add_field("pred_rel_scores", torch.tensor([[0.1, 0.1, 0.7, 0.1], [0.7, 0.1, 0.1, 0.1]]))
    evaluator.add(gt, pred)
    result = evaluator.result()
    assert result["metrics"]["R@K"]["20"] == 1.0 and result["metrics"]["A@K"]["20"] is None
    assert "zR@K" not in result["metrics"] and result["pair_accuracy_detail"] is None
    lines = evaluator.log_lines()
    assert not any(" A @ " in line or "zR @" in line for line in lines)


def test_zeroshot_file_formats(tmp_path):
    triplets = np.array([[1, 2, 3], [4, 5, 6]])
    np.save(tmp_path / "zs.npy", triplets)
    torch.save(torch.from_numpy(triplets), tmp_path / "zs.pytorch")
    for name in ("zs.npy", "zs.pytorch"):
        np.testing.assert_array_equal(load_zeroshot_triplets(str(tmp_path / name)), triplets)


def test_fixture_tool_writes_the_golden_keys(tmp_path):
    folder = require_shared("fixtures", "sgg_eval", "public")
    out = tmp_path / "metrics.json"
    spec = importlib.util.spec_from_file_location("sgg_eval_fixture", TOOL)
    sgg_eval_fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sgg_eval_fixture)
    sgg_eval_fixture.main([str(folder / "sgcls.npz"), "--out", str(out), "--legacy-coco-ann-ids"])
    mine = json.loads(out.read_text())
    golden = json.loads((folder / "sgcls.golden.json").read_text())
    assert mine["num_images_evaluated"] == golden["num_images_evaluated"]
    for key, values in golden["metrics"].items():
        np.testing.assert_allclose([mine["metrics"][key][k] for k in values], list(values.values()), atol=1e-9)
    np.testing.assert_allclose(mine["per_predicate"]["ng-mR"]["50"], golden["per_predicate"]["ng-mR"]["50"],
                               atol=1e-9)
    assert abs(mine["detection"]["mAP50"] - golden["detection"]["mAP50"]) <= 1e-6
    np.testing.assert_allclose(mine["detection"]["coco_stats"], golden["detection"]["coco_stats"], atol=1e-6)


def test_predicate_tree_key_switches_the_hierarchy_metrics_on(dataset, tmp_path):
    """TEST.RELATION.PREDICATE_TREE: a tree with the generator's parents; a perfect prediction scores 1."""
    root = Path(dataset.dict_file).parent
    links = links_from_generator_info(str(root / "synthetic_vg_info.json"))
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"predicates": dataset.ind_to_predicates, "parents": links}))
    config = _config(**{"MODEL.ROI_RELATION_HEAD.USE_GT_BOX": True, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL": True,
                        "TEST.RELATION.PREDICATE_TREE": str(tree), "TEST.RELATION.GRADED_HR_WEIGHTS": (0.3, 0.2)})
    evaluator = build_sgg_evaluator(config, dataset)
    num_predicates = len(dataset.ind_to_predicates) - 1
    for index in range(len(dataset)):
        groundtruth = dataset.get_groundtruth(index, evaluation=True)
        evaluator.add(groundtruth, _perfect_prediction(groundtruth, num_predicates), image_id=index)
    result = evaluator.result()
    for key in ("HR@K", "gHR@K", "TOR_p@K", "TOR_p+@K", "POR_p@K"):
        assert result["metrics"][key]["100"] == 1.0, key
    assert result["hierarchy"]["tree"] == str(tree)
    assert result["hierarchy"]["graded_weights"] == {"coarsen": 0.3, "sibling": 0.2}
    assert result["hierarchy"]["parents"] == {name: links[name] for name in dataset.ind_to_predicates if name in links}
    assert any("type=Hierarchical Recall" in line for line in evaluator.log_lines())

    vg150_tree = Path(__file__).resolve().parents[1] / "configs" / "hierarchy" / "vg150_cogtree_tree.json"
    with pytest.raises(HierarchyError, match=f"{vg150_tree}: predicate 1 is 'above' in the tree but"):
        build_sgg_evaluator(_config(**{"TEST.RELATION.PREDICATE_TREE": str(vg150_tree)}), dataset)
