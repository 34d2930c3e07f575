"""The synthetic PSG generator: deterministic, and its files load back exactly through PSGDataset."""
import filecmp
import json
import os

import numpy as np

from maskrcnn_benchmark.data.datasets import PSGDataset
from maskrcnn_benchmark.data.datasets.psg_vocabulary import NUM_POSITIONAL, PREDICATES, STUFF_CLASSES, THING_CLASSES
from maskrcnn_benchmark.data.datasets.synthetic_psg import SyntheticPSGConfig, make_synthetic_psg

CONFIG = SyntheticPSGConfig(image_long_side=64)


def _generate(path, seed=3):
    make_synthetic_psg(str(path), 30, seed=seed, config=CONFIG)
    with open(os.path.join(path, "psg", "psg.json")) as f:
        return json.load(f)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    _generate(tmp_path / "c", seed=4)
    for name in ("psg/psg.json", "psg/psg_cls_basic.json", "psg/psg_cls_gt.txt"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    assert not filecmp.cmp(tmp_path / "a" / "psg/psg.json", tmp_path / "c" / "psg/psg.json", shallow=False)
    record = json.load(open(tmp_path / "a" / "psg/psg.json"))["data"][0]
    assert filecmp.cmp(tmp_path / "a" / "coco" / record["pan_seg_file_name"],
                       tmp_path / "b" / "coco" / record["pan_seg_file_name"], shallow=False)


def test_files_load_back_exactly(tmp_path):
    psg = _generate(tmp_path)
    assert (psg["thing_classes"], psg["stuff_classes"], psg["predicate_classes"]) == \
        (list(THING_CLASSES), list(STUFF_CLASSES), list(PREDICATES))
    by_id = {record["image_id"]: record for record in psg["data"]}
    img_dir, ann_file = str(tmp_path / "coco"), str(tmp_path / "psg" / "psg.json")
    loaded = 0
    for split in ("train", "test"):
        data = PSGDataset(split, img_dir, ann_file)
        for index in range(len(data)):
            record = by_id[data.get_img_info(index)["image_id"]]
            target = data.get_groundtruth(index, evaluation=True)
            masks = target.get_field("masks").numpy()
            assert masks.shape == (len(record["segments_info"]), record["height"], record["width"])
            assert not (masks.sum(axis=0) > 1).any()  # panoptic: one segment per pixel
            for mask, segment, annotation in zip(masks, record["segments_info"], record["annotations"]):
                rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                assert annotation["bbox"] == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]  # tight, exclusive
                assert segment["area"] == int(mask.sum())
                assert segment["isthing"] == int(segment["category_id"] < len(THING_CLASSES))
            expected = np.array(record["annotations"][0]["bbox"]) - [0, 0, 1, 1]
            assert target.bbox[0].tolist() == expected.tolist()
            assert target.get_field("labels").tolist() == [s["category_id"] + 1 for s in record["segments_info"]]
            rows = {tuple(r) for r in target.get_field("relation_tuple").tolist()}
            assert rows <= {(s, o, p + 1) for s, o, p in record["relations"]}
            loaded += 1
    assert loaded == sum(1 for record in psg["data"] if record["relations"])
    stuff = sum(1 for r in psg["data"] for s in r["segments_info"] if not s["isthing"])
    assert stuff >= len(psg["data"])  # every image has a stuff background


def test_ce7454_files_follow_the_triplets(tmp_path):
    psg = _generate(tmp_path)
    cls = json.load(open(tmp_path / "psg" / "psg_cls_basic.json"))
    assert set(cls["val_image_ids"]) | set(cls["test_image_ids"]) == set(psg["test_image_ids"])
    triplets = {record["image_id"]: record["relations"] for record in psg["data"]}
    hidden = [entry for entry in cls["data"] if entry["image_id"] in set(cls["test_image_ids"])]
    for entry in cls["data"]:
        labels = sorted({p for _, _, p in triplets[entry["image_id"]] if p >= NUM_POSITIONAL})
        assert entry["relations"] == ([] if entry in hidden else labels)
    gt_lines = open(tmp_path / "psg" / "psg_cls_gt.txt").read().splitlines()
    assert gt_lines == [" ".join(str(p) for p in sorted({p for _, _, p in triplets[e["image_id"]] if p >= 6}))
                        for e in hidden]
