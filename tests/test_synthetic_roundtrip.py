"""A synthetic set written by the generator loads back through the config, catalog and VGDataset unchanged."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.build import build_dataset, get_dataset_statistics, make_data_loader
from maskrcnn_benchmark.data.datasets import VGDataset
from maskrcnn_benchmark.data.transforms import Compose, RandomHorizontalFlip
from maskrcnn_benchmark.structures import box_iou

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 200


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "make_synthetic_vg.py"), "--out",
                    str(root / "synthetic_vg"), "--num-images", str(NUM_IMAGES), "--seed", "0"],
                   check=True, capture_output=True, cwd=REPO_ROOT)
    return root


@pytest.fixture(scope="module")
def written(data_dir):
    """What the generator wrote: per-image ground truth and the info report."""
    folder = data_dir / "synthetic_vg"
    annotations = json.loads((folder / "synthetic_vg_annotations.json").read_text())
    info = json.loads((folder / "synthetic_vg_info.json").read_text())
    return annotations, info


def _cfg(data_dir, tmp_path, **overrides):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "synthetic_vg" / "dataset.yaml"))
    cfg.merge_from_list(["DATASETS.DATA_DIR", str(data_dir), "OUTPUT_DIR", str(tmp_path)])
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


def _expected_boxes(annotation):
    """Written pixel boxes after the benchmark's legacy clip to [0, w - 1] x [0, h - 1]."""
    boxes = np.asarray(annotation["boxes"], dtype=np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, annotation["width"] - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, annotation["height"] - 1)
    return boxes


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_split_loads_back_exactly(data_dir, written, tmp_path, split):
    annotations, info = written
    (dataset,) = build_dataset(_cfg(data_dir, tmp_path), [f"synthetic_vg_{split}"])
    expected = [a for a in annotations if a["split"] == split]
    assert len(dataset) == len(expected) == info["splits"][split]
    assert [info_["image_id"] for info_ in dataset.img_info] == [a["image_id"] for a in expected]
    for index, annotation in enumerate(expected):
        rels = np.asarray(annotation["relations"])
        assert len({(s, o) for s, o, _ in rels.tolist()}) == len(rels), "the generator writes one predicate per pair"
        target = dataset.get_groundtruth(index, evaluation=True)
        assert target.size == (annotation["width"], annotation["height"])
        np.testing.assert_array_equal(target.bbox.numpy(), _expected_boxes(annotation))
        assert target.get_field("labels").tolist() == annotation["labels"]
        assert target.get_field("relation_tuple").tolist() == annotation["relations"]
        relation_map = target.get_field("relation")
        assert relation_map[rels[:, 0], rels[:, 1]].tolist() == rels[:, 2].tolist()
        assert int((relation_map > 0).sum()) == len(rels)


def test_vocabulary_matches_the_dictionary_written(data_dir, written, tmp_path):
    (dataset,) = build_dataset(_cfg(data_dir, tmp_path), ["synthetic_vg_test"])
    written_dict = json.loads((data_dir / "synthetic_vg" / "VG-SGG-dicts-with-attri.json").read_text())
    assert dataset.ind_to_predicates[1:] == [written_dict["idx_to_predicate"][str(i)]
                                            for i in range(1, len(written_dict["idx_to_predicate"]) + 1)]
    cfg = _cfg(data_dir, tmp_path)
    assert len(dataset.ind_to_classes) == cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES
    assert len(dataset.ind_to_predicates) == cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES


def test_overlap_filter_keeps_only_overlapping_pairs(data_dir, written, tmp_path):
    annotations, _ = written
    cfg = _cfg(data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.USE_GT_BOX": "False",
                                      "MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP": "True"})
    (dataset,) = build_dataset(cfg, ["synthetic_vg_train"])
    kept = {}
    for a in (a for a in annotations if a["split"] == "train"):
        boxes = torch.tensor(a["boxes"], dtype=torch.float32)
        rels = [r for r in a["relations"] if box_iou(boxes[[r[0]]], boxes[[r[1]]])[0, 0] > 0]
        if rels:
            kept[a["image_id"]] = rels
    assert [info["image_id"] for info in dataset.img_info] == list(kept)
    for index, relations in enumerate(kept.values()):
        assert dataset.relationships[index].tolist() == relations


def test_flipped_image_and_boxes_agree(data_dir, written, tmp_path):
    annotations, _ = written
    (dataset,) = build_dataset(_cfg(data_dir, tmp_path), ["synthetic_vg_test"])
    dataset.transforms = Compose([RandomHorizontalFlip(1.0)])
    annotation = next(a for a in annotations if a["split"] == "test")
    image, target, _ = dataset[0]
    width = annotation["width"]
    original = np.asarray(dataset._load_image(0), dtype=np.float32)
    flipped = np.asarray(image, dtype=np.float32)
    np.testing.assert_array_equal(flipped, original[:, ::-1])
    x1, _, x2, _ = _expected_boxes(annotation).T
    np.testing.assert_array_equal(target.bbox[:, 0].numpy(), width - x2 - 1)
    np.testing.assert_array_equal(target.bbox[:, 2].numpy(), width - x1 - 1)


def test_statistics_count_the_train_relations_and_are_cached(data_dir, written, tmp_path, monkeypatch):
    annotations, _ = written
    cfg = _cfg(data_dir, tmp_path)
    stats = get_dataset_statistics(cfg)
    (train,) = build_dataset(cfg, ["synthetic_vg_train"])
    fg = np.asarray(stats["fg_matrix"])
    # The benchmark counts statistics on the overlap-filtered train split.
    expected = Counter()
    train_ids = {info["image_id"] for info in train.img_info}
    for a in (a for a in annotations if a["image_id"] in train_ids):
        boxes = torch.tensor(a["boxes"], dtype=torch.float32)
        for s, o, p in a["relations"]:
            if box_iou(boxes[[s]], boxes[[o]])[0, 0] > 0:
                expected[(a["labels"][s], a["labels"][o], p)] += 1
    observed = {(int(s), int(o), int(p)): int(fg[s, o, p]) for s, o, p in zip(*np.nonzero(fg)) if p > 0}
    assert observed == dict(expected)
    assert torch.isfinite(stats["pred_dist"]).all() and stats["pred_dist"].dtype == torch.float32
    assert stats["rel_classes"] == train.ind_to_predicates

    cache = Path(tmp_path) / "synthetic_vg_train_statistics.cache"
    assert cache.is_file()
    cached = get_dataset_statistics(cfg)
    assert torch.equal(cached["fg_matrix"], stats["fg_matrix"])
    assert torch.equal(cached["pred_dist"], stats["pred_dist"])
    assert cached["obj_classes"] == stats["obj_classes"]

    def recompute(self):
        raise AssertionError("statistics recomputed")

    monkeypatch.setattr(VGDataset, "get_statistics", recompute)
    assert torch.equal(get_dataset_statistics(cfg)["fg_matrix"], stats["fg_matrix"]), "served from the cache"
    roidb = data_dir / "synthetic_vg" / "VG-SGG-with-attri.h5"
    os.utime(roidb, ns=(roidb.stat().st_atime_ns, roidb.stat().st_mtime_ns + 1))
    with pytest.raises(AssertionError, match="statistics recomputed"):
        get_dataset_statistics(cfg)


def test_train_loader_batches_and_resumes(data_dir, tmp_path):
    cfg = _cfg(data_dir, tmp_path, **{"SOLVER.MAX_ITER": "4", "SOLVER.IMS_PER_BATCH": "2"})
    batches = list(make_data_loader(cfg, mode="train"))
    assert len(batches) == 4
    for images, targets, indices in batches:
        assert images.tensors.shape[0] == len(targets) == len(indices) == 2
        assert images.tensors.shape[-1] % 32 == 0 and images.tensors.shape[-2] % 32 == 0
        for (h, w), target in zip(images.image_sizes, targets):
            assert target.size == (w, h) and min(h, w) == 256
            assert target.has_field("relation") and (target.get_field("relation") > 0).any()
    resumed = list(make_data_loader(cfg, mode="train", start_iter=2))
    assert [b[2] for b in resumed] == [b[2] for b in batches[2:]]


def test_val_loader_visits_every_image_once(data_dir, written, tmp_path):
    _, info = written
    (loader,) = make_data_loader(_cfg(data_dir, tmp_path), mode="val")
    seen = [i for _, _, indices in loader for i in indices]
    assert sorted(seen) == list(range(info["splits"]["val"]))


def test_dataset_statistics_tool_runs(data_dir, tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "dataset_statistics.py"), "--config-file",
                             str(REPO_ROOT / "configs" / "synthetic_vg" / "dataset.yaml"),
                             "DATASETS.DATA_DIR", str(data_dir), "OUTPUT_DIR", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "synthetic_vg_train" in result.stdout and "Frequency statistics" in result.stdout
    bad = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "dataset_statistics.py"), "--config-file",
                          str(REPO_ROOT / "configs" / "synthetic_vg" / "dataset.yaml"),
                          "DATASETS.DATA_DIR", str(data_dir), "OUTPUT_DIR", str(tmp_path),
                          "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", "51"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert bad.returncode != 0 and "MODEL.ROI_RELATION_HEAD.NUM_CLASSES is 51" in bad.stderr
