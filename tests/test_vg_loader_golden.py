"""VGDataset and the VG150 loading functions reproduce the benchmark's golden outputs.

The fixtures in ``<shared>/fixtures/vg_loader`` hold a small VG150-format dataset
and what the Scene-Graph-Benchmark's own VGDataset returned on it for several
constructor settings. Where the benchmark draws at random, the golden files
store the set of allowed predicates; the draws here must stay inside it and,
over many draws, reach every allowed value.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn_benchmark.data.datasets.visual_genome import (
    VGDataset,
    get_VG_statistics,
    load_graphs,
)
from maskrcnn_benchmark.structures.bounding_box import BoxList
from shared_data import SHARED_DIR, require_shared


FIXTURE_DIR = SHARED_DIR / "fixtures" / "vg_loader"


def _read_json(name: str) -> Optional[Any]:
    path = FIXTURE_DIR / name
    return json.loads(path.read_text()) if path.is_file() else None


MANIFEST = _read_json("golden_manifest.json") or {"dataset_configs": [], "paths": {}}
MANIFEST_CONFIGS = {cfg["name"]: cfg for cfg in MANIFEST["dataset_configs"]}
GOLDEN = {cfg["name"]: _read_json(cfg["file"]) for cfg in MANIFEST["dataset_configs"]}
CONFIG_NAMES = list(GOLDEN) or ["fixtures-missing"]
FLIP_CONFIGS = [n for n, g in GOLDEN.items() if any("eval_flip" in im for im in g["images"])] or ["fixtures-missing"]
GETITEM_CONFIGS = [n for n, g in GOLDEN.items() if any("getitem" in im for im in g["images"])] or ["fixtures-missing"]
LOAD_GRAPHS_CALLS = _read_json("golden_load_graphs.json") or [{"name": "fixtures-missing"}]


@pytest.fixture(scope="module")
def paths() -> Dict[str, str]:
    """Absolute paths of the fixture's img_dir, roidb_file, dict_file and image_file."""
    root = require_shared("fixtures", "vg_loader")
    return {key: str(root / rel) for key, rel in MANIFEST["paths"].items()}


def _build(paths: Dict[str, str], name: str, **overrides: Any) -> VGDataset:
    kwargs = dict(MANIFEST_CONFIGS[name]["kwargs"], **overrides)
    return VGDataset(**paths, **kwargs)


@pytest.fixture(scope="module")
def datasets(paths: Dict[str, str]) -> Dict[str, VGDataset]:
    """One dataset per golden setting, built once for the module."""
    return {name: _build(paths, name) for name in GOLDEN}


# --------------------------------------------------------------- comparisons
def _assert_boxes(boxlist: BoxList, expected: List[List[float]]) -> None:
    assert boxlist.bbox.dtype == torch.float32
    np.testing.assert_allclose(boxlist.bbox.numpy(), np.asarray(expected, dtype=np.float64).reshape(-1, 4),
                               atol=1e-4, rtol=0)


def _assert_relation_map(rel_map: torch.Tensor, expected: List[list], shape: List[int]) -> None:
    """Nonzero entries at exactly the recorded pairs, each value within its allowed set."""
    assert rel_map.dtype == torch.int64
    assert list(rel_map.shape) == shape
    assert sorted(map(tuple, torch.nonzero(rel_map).tolist())) == sorted((i, j) for i, j, _ in expected)
    for i, j, allowed in expected:
        assert rel_map[i, j].item() in allowed, (i, j, rel_map[i, j].item(), allowed)


def _assert_relation_tuple(tuples: torch.Tensor, expected: List[list]) -> None:
    """Rows in the recorded order, each predicate within its allowed set."""
    assert tuples.dtype == torch.int64
    assert tuple(tuples.shape) == (len(expected), 3)
    for row, (sub, obj, allowed) in zip(tuples.tolist(), expected):
        assert row[:2] == [sub, obj] and row[2] in allowed, (row, sub, obj, allowed)


def _assert_exact_unless_random(entries: List[list], random_flag: bool) -> None:
    """Golden files mark randomness consistently: a non-random entry allows one value."""
    if not random_flag:
        assert all(len(allowed) == 1 for *_, allowed in entries)


def _check_eval(target: BoxList, golden: Dict[str, Any]) -> None:
    assert list(target.size) == golden["size"] and target.mode == golden["mode"]
    assert sorted(target.fields()) == sorted(golden["fields"])
    _assert_boxes(target, golden["boxes"])
    assert target.get_field("labels").tolist() == golden["labels"]
    assert target.get_field("attributes").tolist() == golden["attributes"]
    _assert_exact_unless_random(golden["relation_tuple"], golden["relation_tuple_random"])
    _assert_exact_unless_random(golden["relation"], golden["relation_random"])
    _assert_relation_tuple(target.get_field("relation_tuple"), golden["relation_tuple"])
    rel_map = target.get_field("relation")
    _assert_relation_map(rel_map, golden["relation"], golden["relation_shape"])
    if golden["relation_matches_tuple"]:
        tuples = target.get_field("relation_tuple")
        assert rel_map[tuples[:, 0], tuples[:, 1]].tolist() == tuples[:, 2].tolist()
        assert int((rel_map > 0).sum()) == len(tuples)


def _check_train(target: BoxList, eval_target: BoxList, golden: Dict[str, Any]) -> None:
    assert list(target.size) == golden["size"]
    assert sorted(target.fields()) == sorted(golden["fields"])
    kept = golden["kept_box_indices"]
    eval_boxes = eval_target.bbox
    non_empty = (eval_boxes[:, 2] > eval_boxes[:, 0]) & (eval_boxes[:, 3] > eval_boxes[:, 1])
    assert torch.nonzero(non_empty).flatten().tolist() == kept
    _assert_boxes(target, golden["boxes"])
    assert torch.equal(target.bbox, eval_boxes[kept])
    assert target.get_field("labels").tolist() == golden["labels"]
    assert target.get_field("attributes").tolist() == golden["attributes"]
    _assert_exact_unless_random(golden["relation"], golden["relation_random"])
    _assert_relation_map(target.get_field("relation"), golden["relation"], golden["relation_shape"])


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_split_contents(name: str, datasets: Dict[str, VGDataset]) -> None:
    ds, golden = datasets[name], GOLDEN[name]
    assert len(ds) == golden["len"] == MANIFEST_CONFIGS[name]["len"]
    assert ds.filter_duplicate_rels == golden["effective"]["filter_duplicate_rels"]
    assert ds.filter_non_overlap == golden["effective"]["filter_non_overlap"]
    assert [os.path.basename(f) for f in ds.filenames] == golden["filenames"]
    assert [info["image_id"] for info in ds.img_info] == golden["image_ids"]
    assert np.flatnonzero(ds.split_mask).tolist() == golden["h5_rows"]
    assert ds.split_mask.dtype == bool and len(ds.split_mask) == MANIFEST["h5_images"]
    for image in golden["images"]:
        assert ds.get_img_info(image["index"]) == image["img_info"]
        assert ds.relationships[image["index"]].tolist() == image["raw_relation_rows"]


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_eval_and_train_targets(name: str, datasets: Dict[str, VGDataset]) -> None:
    ds = datasets[name]
    np.random.seed(0)
    for image in GOLDEN[name]["images"]:
        eval_target = ds.get_groundtruth(image["index"], evaluation=True)
        _check_eval(eval_target, image["eval"])
        _check_train(ds.get_groundtruth(image["index"]), eval_target, image["train"])


@pytest.mark.parametrize("name", FLIP_CONFIGS)
def test_eval_targets_flipped(name: str, datasets: Dict[str, VGDataset]) -> None:
    ds = datasets[name]
    for image in GOLDEN[name]["images"]:
        target = ds.get_groundtruth(image["index"], evaluation=True, flip_img=True)
        _assert_boxes(target, image["eval_flip"]["boxes"])
        assert target.get_field("labels").tolist() == image["eval_flip"]["labels"]


@pytest.mark.parametrize("name", GETITEM_CONFIGS)
def test_getitem(name: str, datasets: Dict[str, VGDataset]) -> None:
    ds = datasets[name]
    for image in GOLDEN[name]["images"]:
        img, target, index = ds[image["index"]]
        assert index == image["index"]
        assert isinstance(img, Image.Image)
        assert list(img.size) == image["getitem"]["image_size"] and img.mode == image["getitem"]["mode"]
        _assert_boxes(target, image["train"]["boxes"])
        assert target.get_field("labels").tolist() == image["train"]["labels"]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_random_draws_stay_in_allowed_sets(name: str, seed: int, datasets: Dict[str, VGDataset]) -> None:
    ds = datasets[name]
    np.random.seed(seed)
    for image in GOLDEN[name]["images"]:
        ev, tr = image["eval"], image["train"]
        if ev["relation_random"] or ev["relation_tuple_random"]:
            _check_eval(ds.get_groundtruth(image["index"], evaluation=True), ev)
        if tr["relation_random"]:
            target = ds.get_groundtruth(image["index"])
            _assert_relation_map(target.get_field("relation"), tr["relation"], tr["relation_shape"])


def _drawn_values(ds: VGDataset, index: int, draws: int) -> Tuple[Dict[tuple, set], Dict[int, set]]:
    """Predicates seen per map pair (i, j) and per relation_tuple row over ``draws`` evaluation targets."""
    per_pair: Dict[tuple, set] = {}
    per_row: Dict[int, set] = {}
    for _ in range(draws):
        target = ds.get_groundtruth(index, evaluation=True)
        rel_map = target.get_field("relation")
        for i, j in torch.nonzero(rel_map).tolist():
            per_pair.setdefault((i, j), set()).add(rel_map[i, j].item())
        for row, (_, _, predicate) in enumerate(target.get_field("relation_tuple").tolist()):
            per_row.setdefault(row, set()).add(predicate)
    return per_pair, per_row


@pytest.mark.parametrize("name", [n for n in ("default_train", "default_test") if n in GOLDEN] or CONFIG_NAMES)
def test_random_draws_reach_every_allowed_value(name: str, datasets: Dict[str, VGDataset]) -> None:
    """Uniform choice of the train duplicate filter and the 0.5 overwrite rule both reach every value."""
    ds = datasets[name]
    np.random.seed(1234)
    random_images = [im for im in GOLDEN[name]["images"] if im["eval"]["relation_random"]]
    assert random_images
    for image in random_images:
        per_pair, per_row = _drawn_values(ds, image["index"], draws=200)
        assert per_pair == {(i, j): set(allowed) for i, j, allowed in image["eval"]["relation"]}
        assert per_row == {row: set(allowed) for row, (*_, allowed) in enumerate(image["eval"]["relation_tuple"])}


def test_flip_aug_flips_image_and_boxes_together(paths: Dict[str, str]) -> None:
    """Deliberate fix of the benchmark's flip_aug bug: a flipped train image has flipped boxes."""
    ds = _build(paths, "default_train", flip_aug=True)
    index = 0
    plain = np.asarray(Image.open(ds.filenames[index]).convert("RGB"))
    flipped_boxes = ds.get_groundtruth(index, flip_img=True).bbox
    outcomes = set()
    for seed in range(12):
        np.random.seed(seed)
        img, target, _ = ds[index]
        flipped = torch.equal(target.bbox, flipped_boxes)
        expected = plain[:, ::-1] if flipped else plain
        np.testing.assert_array_equal(np.asarray(img), expected)
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_flip_aug_is_train_only(paths: Dict[str, str]) -> None:
    ds = _build(paths, "default_test", flip_aug=True)
    unflipped = ds.get_groundtruth(0).bbox
    for seed in range(6):
        np.random.seed(seed)
        assert torch.equal(ds[0][1].bbox, unflipped)


def test_transforms_receive_image_and_target(paths: Dict[str, str]) -> None:
    calls = []

    def transforms(img: Image.Image, target: BoxList):
        calls.append((img.size, target.size))
        return "image", "target"

    ds = _build(paths, "default_val", transforms=transforms)
    assert ds[3] == ("image", "target", 3)
    info = ds.get_img_info(3)
    assert calls == [((info["width"], info["height"]), (info["width"], info["height"]))]


def test_vocabulary(datasets: Dict[str, VGDataset]) -> None:
    vocab = _read_json("golden_vocab.json")
    for ds in datasets.values():
        assert ds.ind_to_classes == vocab["ind_to_classes"]
        assert ds.ind_to_predicates == vocab["ind_to_predicates"]
        assert ds.ind_to_attributes == vocab["ind_to_attributes"]
        assert ds.categories == {int(k): v for k, v in vocab["categories"].items()}


@pytest.mark.parametrize("call", LOAD_GRAPHS_CALLS, ids=[c["name"] for c in LOAD_GRAPHS_CALLS])
def test_load_graphs(call: Dict[str, Any], paths: Dict[str, str]) -> None:
    split_mask, boxes, classes, attributes, relations = load_graphs(paths["roidb_file"], **call["args"])
    assert str(split_mask.dtype) == call["split_mask_dtype"] and len(split_mask) == call["split_mask_len"]
    assert np.flatnonzero(split_mask).tolist() == call["split_mask_true_rows"]
    assert [len(b) for b in boxes] == call["num_boxes"]
    assert [len(r) for r in relations] == call["num_rels"]
    assert [b.tolist() for b in boxes] == call["boxes_1024_xyxy"]
    assert [c.tolist() for c in classes] == call["gt_classes"]
    assert [r.tolist() for r in relations] == call["relationships"]
    assert [a.shape for a in attributes] == [(n, 10) for n in call["num_boxes"]]
    assert all(np.issubdtype(b.dtype, np.integer) for b in boxes)


def _npz(name: str) -> Dict[str, np.ndarray]:
    with np.load(FIXTURE_DIR / name) as data:
        return {key: data[key] for key in data.files}


def _assert_statistics(stats: Dict[str, Any], golden: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
    assert stats["fg_matrix"].dtype == torch.int64 and stats["pred_dist"].dtype == torch.float32
    np.testing.assert_array_equal(stats["fg_matrix"].numpy(), golden["fg_matrix"])
    np.testing.assert_allclose(stats["pred_dist"].numpy(), golden["pred_dist"], atol=1e-6, rtol=0)
    assert stats["obj_classes"] == meta["obj_classes"]
    assert stats["rel_classes"] == meta["rel_classes"]
    assert stats["att_classes"] == meta["att_classes"]


@pytest.mark.parametrize("setting", ["forced_num_val_im", "default"])
def test_statistics(setting: str, paths: Dict[str, str]) -> None:
    """get_statistics uses the dataset's num_val_im: 10 gives ``forced``, 5000 the benchmark's ``default``."""
    meta = _read_json("golden_statistics.json")[setting]
    golden = _npz(meta["npz"])
    num_val_im = meta.get("num_val_im", 5000)
    ds = _build(paths, "default_test", num_val_im=num_val_im)
    _assert_statistics(ds.get_statistics(), golden, meta)
    fg_raw, bg_raw = get_VG_statistics(**{k: paths[k] for k in ("img_dir", "roidb_file", "dict_file", "image_file")},
                                       must_overlap=True, num_val_im=num_val_im)
    np.testing.assert_array_equal(fg_raw, golden["raw_fg_matrix"])
    np.testing.assert_array_equal(bg_raw, golden["raw_bg_matrix"])
    assert int(fg_raw.sum()) == meta["fg_total_relations"] and int(bg_raw.sum()) == meta["bg_raw_total"]
