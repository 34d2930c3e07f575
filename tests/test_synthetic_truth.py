"""The synthetic set's truth split: the annotated roidb with each relation's true predicate.

Checks that it differs from the annotated split exactly at the coarsened relations,
loads through the catalog with the same images, boxes and pairs, and that a
prediction equal to the truth scores 100% truth R@K but only the share of
uncoarsened relations on the annotated split.
"""
import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.build import build_dataset
from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.synthetic_vg import SyntheticWorldConfig, make_synthetic_vg
from maskrcnn_benchmark.structures.bounding_box import BoxList

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 120


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_synthetic_vg(str(root / "synthetic_vg"), NUM_IMAGES, 0, replace(SyntheticWorldConfig(), image_long_side=128))
    return root


@pytest.fixture(scope="module")
def written(data_dir):
    """Per-image ground truth, the report, and the predicate vocabulary the generator wrote."""
    folder = data_dir / "synthetic_vg"
    return (json.loads((folder / "synthetic_vg_annotations.json").read_text()),
            json.loads((folder / "synthetic_vg_info.json").read_text()),
            json.loads((folder / "VG-SGG-dicts-with-attri.json").read_text())["predicate_to_idx"])


def read_h5(path: Path) -> dict:
    with h5py.File(path, "r") as roidb:
        return {name: roidb[name][()] for name in roidb}


def load_split(data_dir: Path, tmp_path: Path, name: str):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "synthetic_vg" / "dataset.yaml"))
    cfg.merge_from_list(["DATASETS.DATA_DIR", str(data_dir), "OUTPUT_DIR", str(tmp_path)])
    (dataset,) = build_dataset(cfg, [name])
    return dataset


def test_truth_h5_differs_from_the_annotated_one_exactly_at_the_coarsened_relations(data_dir, written):
    annotations, info, predicate_to_idx = written
    folder = data_dir / "synthetic_vg"
    annotated, truth = read_h5(folder / "VG-SGG-with-attri.h5"), read_h5(folder / info["truth_roidb_file"])
    assert set(truth) == set(annotated)
    for name in annotated:
        assert truth[name].dtype == annotated[name].dtype and truth[name].shape == annotated[name].shape, name
        if name != "predicates":
            assert np.array_equal(truth[name], annotated[name]), name
    true_ids = np.concatenate([a["relation_types"] for a in annotations])
    assert np.array_equal(truth["predicates"][:, 0], true_ids)
    parent = {predicate_to_idx[fine]: predicate_to_idx[coarse]
              for coarse, children in info["hierarchy"]["coarse_to_fine"].items() for fine in children}
    differs = truth["predicates"][:, 0] != annotated["predicates"][:, 0]
    for true_id, annotated_id, changed in zip(true_ids, annotated["predicates"][:, 0], differs):
        assert not changed or parent[true_id] == annotated_id
    genuine = np.isin(true_ids, [predicate_to_idx[name] for name in info["hierarchy"]["genuine_coarse"]])
    assert genuine.any() and not (differs & genuine).any()
    kinds = info["annotation_kinds_by_split"]
    assert differs.sum() == sum(split["coarsened"] for split in kinds.values()) > 0
    assert genuine.sum() == sum(split["genuine_coarse"] for split in kinds.values())


@pytest.mark.parametrize("split", ["val", "test"])
def test_truth_split_loads_the_same_images_boxes_and_pairs(data_dir, written, tmp_path, split):
    annotations, _, _ = written
    annotated = load_split(data_dir, tmp_path, f"synthetic_vg_{split}")
    truth = load_split(data_dir, tmp_path, f"synthetic_vg_{split}_truth")
    expected = [a for a in annotations if a["split"] == split]
    assert len(truth) == len(annotated) == len(expected) > 0
    assert truth.img_info == annotated.img_info
    assert truth.ind_to_predicates == annotated.ind_to_predicates
    for index, annotation in enumerate(expected):
        gt_annotated = annotated.get_groundtruth(index, evaluation=True)
        gt_truth = truth.get_groundtruth(index, evaluation=True)
        assert torch.equal(gt_truth.bbox, gt_annotated.bbox)
        assert torch.equal(gt_truth.get_field("labels"), gt_annotated.get_field("labels"))
        rels_annotated, rels_truth = gt_annotated.get_field("relation_tuple"), gt_truth.get_field("relation_tuple")
        assert torch.equal(rels_truth[:, :2], rels_annotated[:, :2])
        assert rels_truth[:, 2].tolist() == annotation["relation_types"]
        assert rels_annotated[:, 2].tolist() == [rel[2] for rel in annotation["relations"]]


def truth_prediction(groundtruth: BoxList, num_predicates: int) -> BoxList:
    """A PredCls prediction on the GT boxes whose relations are the true ones, each scored one-hot."""
    relations = groundtruth.get_field("relation_tuple")
    prediction = BoxList(groundtruth.bbox.clone(), groundtruth.size)
    prediction.add_field("pred_labels", groundtruth.get_field("labels").clone())
    prediction.add_field("pred_scores", torch.ones(len(groundtruth)))
    prediction.add_field("rel_pair_idxs", relations[:, :2].clone())
    scores = torch.zeros(len(relations), num_predicates + 1)
    scores[torch.arange(len(relations)), relations[:, 2]] = 1.0
    prediction.add_field("pred_rel_scores", scores)
    return prediction


def test_the_truth_scores_full_truth_recall_and_less_on_the_annotations(data_dir, written, tmp_path):
    annotations, _, _ = written
    annotated = load_split(data_dir, tmp_path, "synthetic_vg_test")
    truth = load_split(data_dir, tmp_path, "synthetic_vg_test_truth")
    num_predicates = len(truth.ind_to_predicates) - 1
    evaluators = {name: SGGEvaluator("predcls", num_predicates) for name in ("annotated", "truth")}
    for index in range(len(truth)):
        gt_truth = truth.get_groundtruth(index, evaluation=True)
        prediction = truth_prediction(gt_truth, num_predicates)
        evaluators["truth"].add(gt_truth, prediction)
        evaluators["annotated"].add(annotated.get_groundtruth(index, evaluation=True), prediction)
    recalls = {name: evaluator.result()["metrics"]["R@K"] for name, evaluator in evaluators.items()}
    # Per image, the annotated recall is the share of its relations that kept their true label.
    kept = [np.mean([rel[2] == true for rel, true in zip(a["relations"], a["relation_types"])])
            for a in annotations if a["split"] == "test"]
    expected = float(np.mean(kept))
    assert expected < 1.0
    for k in ("20", "50", "100"):
        assert recalls["truth"][k] == pytest.approx(1.0)
        assert recalls["annotated"][k] == pytest.approx(expected)
