"""PSGDataset against a psg.json and panoptic PNGs written by hand: OpenPSG's loading rules, masks, errors."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from maskrcnn_benchmark.config.paths_catalog import DatasetCatalog
from maskrcnn_benchmark.data.datasets import PSGDataset
from maskrcnn_benchmark.data.datasets.psg import PSGDataError, rgb_to_segment_id, segment_id_to_rgb

THINGS, STUFF = ["person", "umbrella"], ["road", "sky"]
PREDICATES = ["over", "beside", "on", "standing on"]


def _record(image_id, split_folder, width, height, segments, relations):
    """A psg.json record; ``segments`` = [(id, category, isthing, exclusive bbox, area)]."""
    return {"file_name": f"{split_folder}/{image_id}.jpg", "height": height, "width": width, "image_id": image_id,
            "coco_image_id": str(1000 + int(image_id)), "pan_seg_file_name": f"panoptic_{split_folder}/{image_id}.png",
            "segments_info": [{"id": i, "category_id": c, "iscrowd": 0, "isthing": t, "area": a}
                              for i, c, t, _, a in segments],
            "annotations": [{"bbox": [float(v) for v in b], "bbox_mode": 0, "category_id": c}
                            for _, c, _, b, _ in segments],
            "relations": relations}


def _id_maps():
    """Image 1 (8x6): person id 5, road id 300 (G channel), umbrella id 70000 (B channel); image 2 (4x4); image 3."""
    one = np.zeros((6, 8), dtype=np.int64)
    one[1:4, 1:3] = 5
    one[4:6, :] = 300
    one[0:2, 5:8] = 70000
    two = np.zeros((4, 4), dtype=np.int64)
    two[0:2, 0:2] = 7
    two[2:4, :] = 9
    three = np.full((4, 4), 11, dtype=np.int64)
    return {"1": one, "2": two, "3": three}


def write_fixture(root, edit=None):
    """COCO root ``root/coco`` and ``root/psg.json``; ``edit(psg)`` may corrupt the JSON first."""
    psg = {
        "data": [
            # person on road and standing on road (one pair, two predicates); umbrella over person, twice
            _record("1", "train2017", 8, 6, [(5, 0, 1, (1, 1, 3, 4), 6), (300, 2, 0, (0, 4, 8, 6), 16),
                                             (70000, 1, 1, (5, 0, 8, 2), 6)],
                    [[0, 1, 2], [0, 1, 3], [2, 0, 0], [2, 0, 0]]),
            # test image: person on sky twice (a duplicate triplet) and beside it
            _record("2", "val2017", 4, 4, [(7, 0, 1, (0, 0, 2, 2), 4), (9, 3, 0, (0, 2, 4, 4), 8)],
                    [[0, 1, 2], [0, 1, 2], [0, 1, 1]]),
            # a train image without relations: dropped
            _record("3", "train2017", 4, 4, [(11, 2, 0, (0, 0, 4, 4), 16)], []),
        ],
        "thing_classes": THINGS, "stuff_classes": STUFF, "predicate_classes": PREDICATES, "test_image_ids": ["2"],
    }
    if edit is not None:
        edit(psg)
    for record in psg["data"]:
        id_map = _id_maps()[record["image_id"]]
        rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)
        for name, image in ((record["pan_seg_file_name"], rgb), (record["file_name"], np.full_like(rgb, 128))):
            path = os.path.join(root, "coco", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(image).save(path, format="PNG" if name.endswith(".png") else "JPEG")
    with open(os.path.join(root, "psg.json"), "w") as f:
        json.dump(psg, f)
    return os.path.join(root, "coco"), os.path.join(root, "psg.json")


def test_png_id_encoding_is_r_plus_256g_plus_65536b():
    rgb = np.array([[[194, 173, 55], [0, 0, 0]]], dtype=np.uint8)
    assert rgb_to_segment_id(rgb).tolist() == [[194 + 256 * 173 + 65536 * 55, 0]]
    assert 194 + 256 * 173 + 65536 * 55 == 3648962
    assert segment_id_to_rgb(np.array([[3648962]])).tolist() == [[[194, 173, 55]]]


def test_train_split_boxes_labels_and_one_predicate_per_pair(tmp_path):
    img_dir, ann_file = write_fixture(str(tmp_path))
    train = PSGDataset("train", img_dir, ann_file)
    assert [train.get_img_info(i)["image_id"] for i in range(len(train))] == ["1"]  # image 3 has no relation
    assert train.ind_to_classes == ["__background__", "person", "umbrella", "road", "sky"]
    assert train.ind_to_predicates == ["__background__"] + PREDICATES
    target = train.get_groundtruth(0, evaluation=True)
    # exclusive XYXY -> inclusive: x2 - 1, y2 - 1
    assert target.bbox.tolist() == [[1, 1, 2, 3], [0, 4, 7, 5], [5, 0, 7, 1]]
    assert target.get_field("labels").tolist() == [1, 3, 2]
    seen = set()
    np.random.seed(0)
    for _ in range(40):
        rows = train.get_groundtruth(0, evaluation=True).get_field("relation_tuple").tolist()
        assert len(rows) == 2 and [2, 0, 1] in rows  # one row per pair, predicates + 1
        seen.add(next(p for s, o, p in rows if (s, o) == (0, 1)))
    assert seen == {3, 4}  # "on" or "standing on", drawn per load
    rel_map = train.get_groundtruth(0).get_field("relation")
    assert rel_map[2, 0] == 1 and rel_map[0, 1] in (3, 4) and rel_map.sum() == 1 + rel_map[0, 1]


def test_test_split_keeps_distinct_triplets_and_val_reads_the_same_images(tmp_path):
    img_dir, ann_file = write_fixture(str(tmp_path))
    for split in ("val", "test"):
        data = PSGDataset(split, img_dir, ann_file)
        assert len(data) == 1 and data.get_img_info(0)["image_id"] == "2"
        target = data.get_groundtruth(0, evaluation=True)
        assert target.get_field("relation_tuple").tolist() == [[0, 1, 3], [0, 1, 2]]
        assert target.bbox.tolist() == [[0, 0, 1, 1], [0, 2, 3, 3]]
        assert target.get_field("labels").tolist() == [1, 4]


def test_masks_decode_exactly_in_segment_order(tmp_path):
    img_dir, ann_file = write_fixture(str(tmp_path))
    train = PSGDataset("train", img_dir, ann_file)
    masks = train.get_groundtruth(0, evaluation=True).get_field("masks").numpy()
    id_map = _id_maps()["1"]
    assert masks.shape == (3, 6, 8)
    for mask, segment_id in zip(masks, (5, 300, 70000)):
        assert np.array_equal(mask, id_map == segment_id)
    flipped = train.get_groundtruth(0, evaluation=True, flip_img=True)
    assert np.array_equal(flipped.get_field("masks").numpy()[0], (id_map == 5)[:, ::-1])
    assert flipped.bbox.tolist()[0] == [5, 1, 6, 3]  # x -> w - 1 - x


def test_statistics_count_train_relations_by_class_pair(tmp_path):
    img_dir, ann_file = write_fixture(str(tmp_path))
    stats = PSGDataset("test", img_dir, ann_file).get_statistics()
    fg = stats["fg_matrix"]
    assert fg.shape == (5, 5, 5)
    assert fg[1, 3, 3] == 1 and fg[1, 3, 4] == 1 and fg[2, 1, 1] == 2  # the repeated triplet counts twice
    assert int(fg[:, :, 1:].sum()) == 4


def test_catalog_names_resolve_under_data_dir():
    for split, expected in (("train", "train"), ("val", "val"), ("test", "test")):
        entry = DatasetCatalog.get(f"psg_{split}", "/data")
        assert entry == {"factory": "PSGDataset", "args": {"split": expected, "img_dir": "/data/coco",
                                                           "ann_file": "/data/psg/psg.json"}}


def _drop_segment_id(psg):
    psg["data"][0]["segments_info"][1]["id"] = 12345


def _relation_out_of_range(psg):
    psg["data"][0]["relations"][1] = [0, 3, 1]


def _box_outside(psg):
    psg["data"][0]["annotations"][2]["bbox"] = [5.0, 0.0, 9.0, 2.0]


def test_segment_id_absent_from_png_names_file_image_and_field(tmp_path):
    img_dir, ann_file = write_fixture(str(tmp_path), _drop_segment_id)
    train = PSGDataset("train", img_dir, ann_file)
    with pytest.raises(PSGDataError, match=r"image_id 1: segments_info\[1\]\.id 12345 does not occur in .*1\.png"):
        train.get_groundtruth(0, evaluation=True)


@pytest.mark.parametrize("edit, message", [
    (_relation_out_of_range, r"psg\.json, image_id 1: relations\[1\] = \[0, 3, 1\] indexes a segment outside 0\.\.2"),
    (_box_outside, r"psg\.json, image_id 1: annotations\[2\]\.bbox \[5\.0, 0\.0, 9\.0, 2\.0\] is not .* 8x6 image"),
])
def test_bad_records_name_file_image_and_field(tmp_path, edit, message):
    img_dir, ann_file = write_fixture(str(tmp_path), edit)
    with pytest.raises(PSGDataError, match=message):
        PSGDataset("train", img_dir, ann_file)


def test_missing_top_level_key_is_named(tmp_path):
    img_dir, ann_file = write_fixture(str(tmp_path), lambda psg: psg.pop("test_image_ids"))
    with pytest.raises(PSGDataError, match=r"lacks the top-level key\(s\) \['test_image_ids'\]"):
        PSGDataset("train", img_dir, ann_file)
