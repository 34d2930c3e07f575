"""Tests of the synthetic VG150-format generator: raw file contents, determinism, knobs, long tail, report."""
import hashlib
import importlib.util
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from shared_data import require_shared

from maskrcnn_benchmark.data.datasets.synthetic_vg import SyntheticWorldConfig, make_synthetic_vg
from maskrcnn_benchmark.data.datasets.synthetic_vg.render import render_scene, shape_mask
from maskrcnn_benchmark.data.datasets.synthetic_vg.world import (
    GENUINE_COARSE_RULES,
    OBJECT_CLASSES,
    SHAPES,
    TEXTURES,
    blend_sibling_layouts,
    build_world,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIPPED_IDS = {1592, 1722, 4616, 4617}
OUTPUT_FILES = ("VG-SGG-with-attri.h5", "VG-SGG-with-attri-truth.h5", "VG-SGG-dicts-with-attri.json",
                "image_data.json", "synthetic_vg_info.json", "synthetic_vg_annotations.json")
H5_LAYOUT = {  # name: (columns or None for 1-D, dtype kind)
    "split": (None, "i"), "img_to_first_box": (None, "i"), "img_to_last_box": (None, "i"),
    "img_to_first_rel": (None, "i"), "img_to_last_rel": (None, "i"), "labels": (1, "i"),
    "boxes_1024": (4, "i"), "boxes_512": (4, "i"), "active_object_mask": (1, "b"),
    "relationships": (2, "i"), "predicates": (1, "i"), "attributes": (10, "i"),
}


# sha256 of what the generator wrote before genuine-coarse types existed, for
# make_synthetic_vg(out, 40, seed=0, image_long_side=128); "VG_100K" digests the sorted
# "<name><sha256>" of the 40 images. They also pin numpy's generators, h5py/HDF5 and
# Pillow's JPEG encoder: after an upgrade of those, regenerate them with the old code.
OLD_WORLD_DIGESTS = {
    "VG-SGG-with-attri.h5": "35cb7b575043d5e3868f8d81a79b396afdecbc522a9dbd4dfaff2d6e2425adb9",
    "VG-SGG-dicts-with-attri.json": "94d4e8ecaa017e93861efb393d44d7e738292a78c5d54381c05e781735ebe973",
    "image_data.json": "edab24e3f8b851aefaab7db535d8a11277062be7d99696f58daba730aa296d9d",
    "synthetic_vg_annotations.json": "d8a06d9c86b007e097dbdf8b5389ce9367ce9deb4638d7f61047acb62f2c6138",
    "VG_100K": "9af204e551a386098b3243a20ad1dac5024b4be620385231d1d78ec7fd07bc2f",
}


def generate(out_dir: Path, num_images: int, seed: int = 0, **knobs) -> dict:
    """Run the generator with ``knobs`` over the defaults."""
    return make_synthetic_vg(str(out_dir), num_images, seed, replace(SyntheticWorldConfig(), **knobs))


def read_json(out_dir: Path, name: str):
    with open(out_dir / name) as handle:
        return json.load(handle)


def read_h5(out_dir: Path) -> dict:
    with h5py.File(out_dir / "VG-SGG-with-attri.h5", "r") as roidb:
        return {name: roidb[name][()] for name in roidb}


def per_image_relations(roidb: dict) -> list:
    """(R, 3) rows (sub, obj, predicate) per image with image-local box indices, as the loader builds them."""
    result = []
    for first_box, first, last in zip(roidb["img_to_first_box"], roidb["img_to_first_rel"], roidb["img_to_last_rel"]):
        rels = roidb["relationships"][first:last + 1] - first_box
        result.append(np.column_stack([rels, roidb["predicates"][first:last + 1, 0]]))
    return result


def file_digests(out_dir: Path) -> dict:
    names = list(OUTPUT_FILES) + sorted(f"VG_100K/{name}" for name in os.listdir(out_dir / "VG_100K"))
    return {name: hashlib.sha256((out_dir / name).read_bytes()).hexdigest() for name in names}


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    """300 images at the defaults (seed 0): enough for the long-tail check."""
    out_dir = tmp_path_factory.mktemp("synthetic_default")
    return out_dir, make_synthetic_vg(str(out_dir), 300, 0)


@pytest.fixture(scope="module")
def real_vocab():
    with open(require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json")) as handle:
        return json.load(handle)


def test_h5_datasets_have_the_vg150_layout(default_set):
    out_dir, report = default_set
    roidb = read_h5(out_dir)
    assert set(roidb) == set(H5_LAYOUT)
    num_images, num_boxes, num_rels = 300, report["num_boxes"], report["num_relations"]
    rows = {"split": num_images, "img_to_first_box": num_images, "img_to_last_box": num_images,
            "img_to_first_rel": num_images, "img_to_last_rel": num_images, "relationships": num_rels,
            "predicates": num_rels}
    for name, (columns, kind) in H5_LAYOUT.items():
        expected = (rows.get(name, num_boxes),) if columns is None else (rows.get(name, num_boxes), columns)
        assert roidb[name].shape == expected, name
        assert roidb[name].dtype.kind == kind, name
    assert set(np.unique(roidb["split"])) <= {0, 2}
    assert roidb["active_object_mask"].all()
    first, last = roidb["img_to_first_box"], roidb["img_to_last_box"]
    assert first[0] == 0 and last[-1] == num_boxes - 1 and np.array_equal(first[1:], last[:-1] + 1)
    first_rel, last_rel = roidb["img_to_first_rel"], roidb["img_to_last_rel"]
    assert first_rel[0] == 0 and last_rel[-1] == num_rels - 1 and np.array_equal(first_rel[1:], last_rel[:-1] + 1)
    assert (first <= last).all() and (first_rel <= last_rel).all()
    for image in range(num_images):
        rels = roidb["relationships"][first_rel[image]:last_rel[image] + 1]
        assert ((rels >= first[image]) & (rels <= last[image])).all()
        assert (rels[:, 0] != rels[:, 1]).all()
    assert roidb["labels"].min() >= 1 and roidb["labels"].max() <= len(report["object_counts"])
    assert roidb["predicates"].min() >= 1 and roidb["predicates"].max() <= len(report["predicate_counts"])
    assert (roidb["attributes"][:, 0] > 0).all()


def test_boxes_1024_decode_to_the_drawn_boxes(default_set):
    out_dir, _ = default_set
    roidb = read_h5(out_dir)
    images = read_json(out_dir, "image_data.json")
    annotations = read_json(out_dir, "synthetic_vg_annotations.json")
    encoded = roidb["boxes_1024"]
    assert (encoded[:, 2:] > 0).all() and (encoded[:, :2] >= 0).all()
    decoded = encoded.copy()  # the loader's in-place integer decode
    decoded[:, :2] = encoded[:, :2] - encoded[:, 2:] / 2
    decoded[:, 2:] = decoded[:, :2] + decoded[:, 2:]
    for image, info, truth in zip(range(len(images)), images, annotations):
        first, last = roidb["img_to_first_box"][image], roidb["img_to_last_box"][image]
        pixels = decoded[first:last + 1] / 1024 * max(info["width"], info["height"])
        assert np.array_equal(pixels, np.array(truth["boxes"], dtype=np.float64)), info["image_id"]
        assert np.array_equal(roidb["labels"][first:last + 1, 0], truth["labels"])
        assert (pixels[:, 2] <= info["width"] - 1).all() and (pixels[:, 3] <= info["height"] - 1).all()


def test_images_exist_with_the_json_size_and_valid_ids(default_set):
    out_dir, _ = default_set
    images = read_json(out_dir, "image_data.json")
    ids = [info["image_id"] for info in images]
    assert ids == sorted(set(ids)) and ids[0] >= 1 and not SKIPPED_IDS & set(ids)
    for info in images:
        assert set(info) == {"image_id", "width", "height", "url", "coco_id", "flickr_id"}
        assert info["coco_id"] is None and info["flickr_id"] is None and not info["url"]
        with Image.open(out_dir / "VG_100K" / f"{info['image_id']}.jpg") as image:
            assert image.size == (info["width"], info["height"]) and image.format == "JPEG"
    assert {(info["width"], info["height"]) for info in images} == {(256, 192), (192, 256), (256, 256)}


def test_dictionary_is_contiguous_alphabetical_real_vg150_and_counts_match(default_set, real_vocab):
    out_dir, report = default_set
    vocab = read_json(out_dir, "VG-SGG-dicts-with-attri.json")
    roidb = read_h5(out_dir)
    real = {"label": real_vocab["label_to_idx"], "predicate": real_vocab["predicate_to_idx"],
            "attribute": real_vocab["attribute_to_idx"]}
    for kind, real_names in real.items():
        to_idx, from_idx = vocab[f"{kind}_to_idx"], vocab[f"idx_to_{kind}"]
        names = [from_idx[str(index)] for index in range(1, len(from_idx) + 1)]
        assert names == sorted(names) and set(names) <= set(real_names)
        assert to_idx == {name: index for index, name in enumerate(names, start=1)}
    assert 20 <= len(vocab["label_to_idx"]) <= 30 and 15 <= len(vocab["predicate_to_idx"]) <= 25
    labels = Counter(vocab["idx_to_label"][str(label)] for label in roidb["labels"][:, 0])
    predicates = Counter(vocab["idx_to_predicate"][str(p)] for p in roidb["predicates"][:, 0])
    assert vocab["object_count"] == {name: labels[name] for name in vocab["label_to_idx"]}
    assert vocab["predicate_count"] == {name: predicates[name] for name in vocab["predicate_to_idx"]}
    assert report["predicate_counts"] == dict(sorted(predicates.items(), key=lambda kv: (-kv[1], kv[0])))


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    generate(tmp_path / "a", 25, seed=3)
    generate(tmp_path / "b", 25, seed=3)
    generate(tmp_path / "c", 25, seed=4)
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")
    digests_c = file_digests(tmp_path / "c")
    assert digests_c["VG-SGG-with-attri.h5"] != file_digests(tmp_path / "a")["VG-SGG-with-attri.h5"]


def test_relations_per_image_within_bounds_and_splits(tmp_path):
    report = generate(tmp_path, 60, min_rels=2, max_rels=4, max_distractors=2, test_fraction=0.25,
                      num_val_fraction=0.2)
    roidb = read_h5(tmp_path)
    rels = roidb["img_to_last_rel"] - roidb["img_to_first_rel"] + 1
    boxes = roidb["img_to_last_box"] - roidb["img_to_first_box"] + 1
    assert rels.min() >= 2 and rels.max() <= 4 and set(rels) == {2, 3, 4}
    assert (boxes >= 2 * rels).all() and (boxes <= 2 * rels + 2).all()
    assert report["splits"] == {"train": 36, "val": 9, "test": 15} and report["num_val_im"] == 9
    annotations = read_json(tmp_path, "synthetic_vg_annotations.json")
    train_rows = [a["split"] for a in annotations if a["split"] != "test"]
    assert train_rows[:9] == ["val"] * 9 and "val" not in train_rows[9:]
    assert (roidb["split"] == 2).sum() == 15


def test_long_tail_ratio_at_defaults(default_set):
    _, report = default_set
    counts = report["predicate_counts"]
    assert min(counts.values()) > 0
    assert report["predicate_count_ratio"] == pytest.approx(max(counts.values()) / min(counts.values()))
    assert report["predicate_count_ratio"] >= 50
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


@pytest.mark.parametrize("coarse_prob", [0.0, 1.0])
def test_coarse_prob_extremes(tmp_path, coarse_prob):
    report = generate(tmp_path, 40, coarse_prob=coarse_prob)
    vocab = read_json(tmp_path, "VG-SGG-dicts-with-attri.json")
    layer1 = set(report["hierarchy"]["layers"]["1"])
    for truth in read_json(tmp_path, "synthetic_vg_annotations.json"):
        for (_, _, annotated), generating in zip(truth["relations"], truth["relation_types"]):
            annotated_name = vocab["idx_to_predicate"][str(annotated)]
            if coarse_prob == 0.0:
                assert annotated == generating
            else:
                assert annotated_name in layer1
    if coarse_prob == 1.0:
        assert all(count == 0 for name, count in report["predicate_counts"].items() if name not in layer1)


def test_num_coarse_only_adds_childless_coarse_predicates(tmp_path):
    default = generate(tmp_path / "default", 20)
    assert default["hierarchy"]["coarse_only"] == []
    assert set(default["hierarchy"]["layers"]["1"]) == set(default["hierarchy"]["coarse_to_fine"])
    report = generate(tmp_path / "two", 80, num_coarse_only=2)
    coarse_only = report["hierarchy"]["coarse_only"]
    assert len(coarse_only) == 2 and not set(coarse_only) & set(report["hierarchy"]["coarse_to_fine"])
    assert set(coarse_only) <= set(report["hierarchy"]["layers"]["1"])
    assert all(report["predicate_counts"][name] > 0 for name in coarse_only)
    assert len(report["predicate_counts"]) == len(default["predicate_counts"]) + 2


def test_old_world_is_byte_identical_with_genuine_coarse_share_zero(tmp_path):
    generate(tmp_path, 40, seed=0, image_long_side=128, genuine_coarse_share=0.0)
    digests = file_digests(tmp_path)
    images = "".join(name + digest for name, digest in digests.items() if name.startswith("VG_100K/"))
    digests["VG_100K"] = hashlib.sha256(images.encode()).hexdigest()
    assert {name: digests[name] for name in OLD_WORLD_DIGESTS} == OLD_WORLD_DIGESTS


@pytest.mark.parametrize("share, expected", [(0.0, []), (0.3, ["has", "on"]), (0.5, ["has", "near", "on"]),
                                             (1.0, ["has", "in", "near", "of", "on"])])
def test_genuine_coarse_share_picks_the_first_parents(tmp_path, share, expected):
    report = generate(tmp_path, 60, genuine_coarse_share=share)
    assert report["hierarchy"]["genuine_coarse"] == expected
    assert all(report["relation_type_counts"][name] > 0 for name in expected)
    assert set(expected) <= set(report["hierarchy"]["coarse_to_fine"])
    kinds = report["annotation_kinds_by_split"]
    assert sum(kinds[split]["genuine_coarse"] for split in kinds) == sum(
        report["relation_type_counts"][name] for name in expected)


def test_genuine_coarse_types_have_their_own_class_pairs():
    world = build_world(num_coarse_only=5, num_genuine_coarse=5, geometry_overlap=0.0)
    pairs = {rule.predicate: set(itertools.product(rule.subjects, rule.objects)) for rule in world.rules}
    for rule in GENUINE_COARSE_RULES:
        others = set().union(*(pairs[name] for name in pairs if name != rule.predicate))
        assert not pairs[rule.predicate] & (others | {(obj, sub) for sub, obj in others}), rule.predicate
    assert world.genuine_coarse_predicates() == tuple(sorted(rule.predicate for rule in GENUINE_COARSE_RULES))


@pytest.mark.parametrize("coarse_prob", [0.0, 0.6])
def test_genuine_coarse_relations_are_always_annotated_coarse(tmp_path, coarse_prob):
    report = generate(tmp_path, 80, coarse_prob=coarse_prob)
    vocab = read_json(tmp_path, "VG-SGG-dicts-with-attri.json")
    genuine = {vocab["predicate_to_idx"][name] for name in report["hierarchy"]["genuine_coarse"]}
    fine = {vocab["predicate_to_idx"][name] for name in report["hierarchy"]["layers"]["2"]}
    kinds = Counter()
    for truth in read_json(tmp_path, "synthetic_vg_annotations.json"):
        for (_, _, annotated), true in zip(truth["relations"], truth["relation_types"]):
            if true in genuine:
                assert annotated == true
            kind = ("genuine_coarse" if true in genuine else "coarse_only" if true not in fine
                    else "fine_annotated" if annotated == true else "coarsened")
            kinds[truth["split"], kind] += 1
    assert kinds["test", "genuine_coarse"] > 0 and (coarse_prob == 0.0) == (kinds["test", "coarsened"] == 0)
    assert report["annotation_kinds_by_split"] == {
        split: {kind: kinds[split, kind] for kind in ("fine_annotated", "coarsened", "genuine_coarse", "coarse_only")}
        for split in ("train", "val", "test")}


def test_hierarchy_and_layer_purity_match_the_h5(default_set):
    out_dir, report = default_set
    hierarchy = report["hierarchy"]
    layer1, layer2 = set(hierarchy["layers"]["1"]), set(hierarchy["layers"]["2"])
    assert layer1 | layer2 == set(report["predicate_counts"]) and not layer1 & layer2
    assert layer2 == {fine for children in hierarchy["coarse_to_fine"].values() for fine in children}
    assert all(len(children) >= 2 for children in hierarchy["coarse_to_fine"].values())
    vocab = read_json(out_dir, "VG-SGG-dicts-with-attri.json")
    roidb = read_h5(out_dir)
    train_images = np.flatnonzero(roidb["split"] == 0)[report["num_val_im"]:]
    relations = per_image_relations(roidb)
    kinds = Counter()
    for image in train_images:
        in_layer1 = {vocab["idx_to_predicate"][str(p)] in layer1 for p in relations[image][:, 2]}
        kinds["layer1_pure" if in_layer1 == {True} else "layer2_pure" if in_layer1 == {False} else "mixed"] += 1
    purity = report["layer_purity"]
    assert purity["images"] == len(train_images) == report["splits"]["train"]
    assert purity["counts"] == {key: kinds[key] for key in ("layer1_pure", "layer2_pure", "mixed")}
    assert purity["layer1_pure"] + purity["layer2_pure"] + purity["mixed"] == pytest.approx(1.0)
    assert purity["layer2_pure"] > 0.05


def test_annotated_predicate_is_the_generating_one_or_its_parent(default_set):
    out_dir, report = default_set
    vocab = read_json(out_dir, "VG-SGG-dicts-with-attri.json")
    parent = {fine: coarse for coarse, children in report["hierarchy"]["coarse_to_fine"].items() for fine in children}
    names = vocab["idx_to_predicate"]
    for truth in read_json(out_dir, "synthetic_vg_annotations.json"):
        for (_, _, annotated), generating in zip(truth["relations"], truth["relation_types"]):
            assert names[str(annotated)] in (names[str(generating)], parent.get(names[str(generating)]))


@pytest.mark.parametrize("bad", [dict(num_images=0), dict(min_rels=3, max_rels=2), dict(coarse_prob=1.2),
                                 dict(coarse_prob=-0.1), dict(max_rels=6), dict(num_coarse_only=9),
                                 dict(image_long_side=300)])
def test_bad_input_raises_value_error(tmp_path, bad):
    num_images = bad.pop("num_images", 5)
    with pytest.raises(ValueError):
        generate(tmp_path, num_images, **bad)


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_bad_genuine_coarse_share_names_the_knob(tmp_path, share):
    with pytest.raises(ValueError, match=r"genuine_coarse_share must be in \[0, 1\]"):
        generate(tmp_path, 5, genuine_coarse_share=share)


def test_world_classes_look_different_and_layouts_are_valid():
    for first, second in itertools.combinations(OBJECT_CLASSES, 2):
        differences = sum(a != b for a, b in zip((first.shape, first.colour, first.texture),
                                                 (second.shape, second.colour, second.texture)))
        assert differences >= 2, (first.name, second.name)
    assert {cls.shape for cls in OBJECT_CLASSES} <= set(SHAPES)
    assert {cls.texture for cls in OBJECT_CLASSES} <= set(TEXTURES)
    world = build_world(num_coarse_only=5, num_genuine_coarse=5, geometry_overlap=0.0)
    for ranges in world.layout_ranges:
        assert (ranges[..., 0] <= ranges[..., 1]).all() and ranges.min() >= 0 and ranges.max() <= 1
        assert (ranges[:, :2, 1] < ranges[:, 2:, 0]).all()
    shared = blend_sibling_layouts(world.rules, 1.0)
    for (index, rule), (other, sibling) in itertools.combinations(enumerate(world.rules), 2):
        if rule.parent is not None and rule.parent == sibling.parent:
            assert np.allclose(shared[index], shared[other])
            assert not np.allclose(world.layout_ranges[index], world.layout_ranges[other])


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_touch_all_four_box_sides(shape):
    for height, width in [(4, 4), (5, 40), (40, 5), (17, 23), (64, 64)]:
        mask = shape_mask(shape, height, width)
        assert mask.shape == (height, width)
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()


def test_rendered_objects_fill_their_boxes_exactly():
    rng = np.random.default_rng(0)
    for style in OBJECT_CLASSES:
        box = (7, 11, 7 + int(rng.integers(4, 60)), 11 + int(rng.integers(4, 60)))
        image = render_scene(rng, 80, 90, [box], [style], [0], noise_std=0.0)
        changed = np.argwhere((image != image[0, 0]).any(axis=2))
        assert tuple(changed.min(axis=0)) == (box[1], box[0]), style.name
        assert tuple(changed.max(axis=0) + 1) == (box[3], box[2]), style.name


def test_geometry_overlap_changes_only_fine_layouts(tmp_path):
    separated = build_world(num_coarse_only=2, num_genuine_coarse=5, geometry_overlap=0.0)
    shared = build_world(num_coarse_only=2, num_genuine_coarse=5, geometry_overlap=1.0)
    for rule, own, blended in zip(separated.rules, separated.layout_ranges, shared.layout_ranges):
        assert np.array_equal(own, rule.layout.ranges())
        assert np.array_equal(own, blended) == (rule.parent is None), rule.predicate
    report = generate(tmp_path, 30, geometry_overlap=1.0)
    assert report["config"]["geometry_overlap"] == 1.0


def test_cli_writes_the_dataset_and_prints_the_report(tmp_path):
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "make_synthetic_vg.py"), "--out", str(tmp_path),
         "--num-images", "20", "--seed", "1", "--coarse-prob", "0.5", "--aspect-ratios", "1.0"],
        capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "layer-2-pure" in result.stdout and "predicate" in result.stdout
    assert "genuine-coarse predicates: has, in, near, of, on" in result.stdout
    assert "test relations: " in result.stdout and "coarsened" in result.stdout
    info = read_json(tmp_path, "synthetic_vg_info.json")
    assert info["num_images"] == 20 and info["seed"] == 1 and info["config"]["coarse_prob"] == 0.5
    assert all(name in os.listdir(tmp_path) for name in OUTPUT_FILES)


def test_cli_rejects_bad_knobs_with_a_clear_message(caplog):
    spec = importlib.util.spec_from_file_location("make_synthetic_vg_cli", REPO_ROOT / "tools" / "make_synthetic_vg.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--out", "unused", "--num-images", "0"]) != 0
    assert cli.main(["--out", "unused", "--num-images", "5", "--min-rels", "3", "--max-rels", "2"]) != 0
    assert cli.main(["--out", "unused", "--num-images", "5", "--genuine-coarse-share", "2"]) != 0
    assert "num_images must be >= 1" in caplog.text and "max_rels must be in" in caplog.text
    assert "genuine_coarse_share must be in [0, 1]" in caplog.text
