"""tools/check_dataset.py (issue 17): nothing on a clean synthetic set; one corruption of each class in a
copy of it, every one reported with its file, key, image id and index; the training tools stop at start-up."""
import json
import os
import runpy
import shutil

import h5py
import numpy as np
import pytest

from maskrcnn_benchmark.data.dataset_check import DatasetCheckError, check_vg150
from maskrcnn_benchmark.data.datasets.synthetic_vg import make_synthetic_vg
from maskrcnn_benchmark.engine.defaults import setup
from relation_tool_args import REPO, config_file, small_overrides

ROIDB, DICT, IMAGES, IMG_DIR = "VG-SGG-with-attri.h5", "VG-SGG-dicts-with-attri.json", "image_data.json", "VG_100K"


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("check_data")
    make_synthetic_vg(str(data_dir / "synthetic_vg"), num_images=12, seed=3)
    return str(data_dir)


def files(data_dir):
    folder = os.path.join(data_dir, "synthetic_vg")
    return [os.path.join(folder, name) for name in (IMG_DIR, ROIDB, DICT, IMAGES)]


def run_tool(data_dir, capsys):
    """(exit status, parsed --json output) of tools/check_dataset.py, run in this process."""
    tool = runpy.run_path(os.path.join(REPO, "tools", "check_dataset.py"))
    capsys.readouterr()
    status = tool["main"](["--config-file", config_file("predcls"), "--json", "DATASETS.DATA_DIR", data_dir])
    return status, json.loads(capsys.readouterr().out)


def test_clean_set_passes(clean_dir, capsys):
    assert check_vg150(*files(clean_dir), deep=True) == []
    assert run_tool(clean_dir, capsys) == (0, {"problems": [], "count": 0})


def _edit_h5(path, edit):
    with h5py.File(path, "r+") as h5:
        edit(h5)


def _replace(h5, key, values):
    del h5[key]
    h5[key] = values


def _with_row(key, row, column, value):
    def edit(h5):
        values = h5[key][()]
        values[row, column] = value
        _replace(h5, key, values)
    return edit


def _json(path, edit):
    with open(path) as f:
        content = json.load(f)
    edit(content)
    with open(path, "w") as f:
        json.dump(content, f)


def test_every_corruption_class_is_reported(clean_dir, tmp_path, capsys):
    """One corruption per class of the issue, all in one copy: the report names each (file, key, image, index)."""
    data_dir = str(tmp_path)
    shutil.copytree(os.path.join(clean_dir, "synthetic_vg"), os.path.join(data_dir, "synthetic_vg"))
    img_dir, roidb, dict_file, image_file = files(data_dir)
    with h5py.File(roidb, "r") as h5:
        first_box, last_box = h5["img_to_first_box"][()], h5["img_to_last_box"][()]
        first_rel = h5["img_to_first_rel"][()]
    with open(image_file) as f:
        ids = [entry["image_id"] for entry in json.load(f)]
    with_rels = [r for r in np.flatnonzero((first_box >= 0) & (first_rel >= 0)) if last_box[r] > first_box[r]]
    a, b, c = (int(r) for r in with_rels[:3])  # three images with relations and >= 2 boxes
    box_a, box_b, box_c = int(first_box[a]), int(first_box[b]), int(first_box[c])

    def float_boxes_with_nan(h5):
        values = h5["boxes_1024"][()].astype(np.float32)
        values[box_c, 0] = np.nan
        _replace(h5, "boxes_1024", values)

    def overlapping_range(h5):
        last = h5["img_to_last_box"][()]
        last[a] = first_box[b]  # image a's boxes now run into image b's
        _replace(h5, "img_to_last_box", last)

    for edit in (_with_row("boxes_1024", box_a, 2, 0),  # w <= 0
                 _with_row("boxes_1024", box_b, 0, 5000),  # outside the image
                 float_boxes_with_nan,
                 _with_row("labels", box_b + 1, 0, 999),  # label outside the dictionary
                 _with_row("relationships", int(first_rel[c]), 0, box_a),  # another image's box
                 overlapping_range,
                 lambda h5: h5.__delitem__("attributes"),  # missing key
                 lambda h5: _replace(h5, "predicates", h5["predicates"][()].astype(np.float64))):  # wrong dtype
        _edit_h5(roidb, edit)
    _json(dict_file, lambda d: d["predicate_count"].pop(next(iter(d["predicate_count"]))))  # count mismatch
    _json(image_file, lambda entries: entries[-1].update(image_id=entries[-2]["image_id"]))  # duplicate id
    os.remove(os.path.join(img_dir, f"{ids[0]}.jpg"))  # listed but absent
    with open(os.path.join(img_dir, f"{ids[1]}.jpg"), "wb") as f:
        f.write(b"not a jpeg")  # unreadable

    problems = check_vg150(img_dir, roidb, dict_file, image_file, deep=True)
    text = "\n".join(map(str, problems))

    def reported(file, key, image_id, index, words):
        hits = [p for p in problems if os.path.basename(p.file) == file and p.key == key and p.image_id == image_id
                and p.index == index and words in p.message]
        assert hits, f"{file} {key} {image_id} {index} {words!r} not in:\n{text}"

    reported(ROIDB, "boxes_1024", ids[a], box_a, "w or h <= 0")
    reported(ROIDB, "boxes_1024", ids[b], box_b, "outside its image")
    reported(ROIDB, "boxes_1024", ids[c], box_c, "NaN or Inf")
    reported(ROIDB, "labels", ids[b], box_b + 1, "outside the dictionary")
    reported(ROIDB, "relationships", ids[c], int(first_rel[c]), "not in the image's box range")
    reported(ROIDB, "img_to_first_box/img_to_last_box", ids[b], b, "overlaps")
    reported(ROIDB, "attributes", None, None, "dataset missing")
    reported(ROIDB, "predicates", None, None, "dtype float64")
    reported(DICT, "predicate_count", None, None, "does not count the names")
    reported(IMAGES, "image_id", ids[-2], len(ids) - 1, "more than once")
    reported(IMG_DIR, "img_dir", ids[0], 0, "missing")
    reported(IMG_DIR, "img_dir", ids[1], 1, "unreadable")

    status, report = run_tool(data_dir, capsys)
    assert status == 1 and report["count"] == len(problems) == len(report["problems"])


def test_missing_and_truncated_files(clean_dir, tmp_path):
    data_dir = str(tmp_path)
    shutil.copytree(os.path.join(clean_dir, "synthetic_vg"), os.path.join(data_dir, "synthetic_vg"))
    img_dir, roidb, dict_file, image_file = files(data_dir)
    os.remove(dict_file)
    with open(roidb, "r+b") as f:
        f.truncate(os.path.getsize(roidb) // 2)
    problems = check_vg150(img_dir, roidb, dict_file, image_file, deep=False)
    assert any(p.file == dict_file and p.key == "dict_file" and "not found" in p.message for p in problems)
    shutil.copy(os.path.join(clean_dir, "synthetic_vg", DICT), dict_file)
    problems = check_vg150(img_dir, roidb, dict_file, image_file, deep=False)
    assert problems and all(p.file == roidb for p in problems), problems
    assert any("truncated" in p.message for p in problems), problems


def test_training_tools_stop_at_start_up_with_the_problems(clean_dir, tmp_path):
    data_dir = str(tmp_path)
    shutil.copytree(os.path.join(clean_dir, "synthetic_vg"), os.path.join(data_dir, "synthetic_vg"))
    _, roidb, _, _ = files(data_dir)
    _edit_h5(roidb, lambda h5: h5.__delitem__("img_to_first_rel"))
    opts = small_overrides(data_dir, str(tmp_path / "out"), 2)
    with pytest.raises(DatasetCheckError, match=r"(?s)img_to_first_rel: dataset missing.*tools/check_dataset\.py"):
        setup(config_file("predcls"), opts)
    assert not os.path.exists(tmp_path / "out")  # stopped before anything was written
