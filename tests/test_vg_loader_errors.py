"""Bad VG150 input fails with a VGDataError that names the file, key, image or box at fault.

Each test corrupts a private copy of the golden fixture files (in ``tmp_path``).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Dict

import h5py
import numpy as np
import pytest

from maskrcnn_benchmark.data.datasets.visual_genome import (
    VG150_NUM_IMAGES,
    VGDataError,
    VGDataset,
    load_graphs,
    load_image_filenames,
    load_info,
)
from shared_data import require_shared

FILES = {
    "img_dir": "VG_100K",
    "roidb_file": "VG-SGG-with-attri.h5",
    "dict_file": "VG-SGG-dicts-with-attri.json",
    "image_file": "image_data.json",
}
H5_ROWS = 60  # image rows of the fixture roidb
IMAGE_ROW, IMAGE_ID = 22, 972  # a train image with boxes and relations




@pytest.fixture
def data(tmp_path: Path) -> Dict[str, str]:
    """Writable copies of the fixture's four inputs, as VGDataset path arguments."""
    fixture_dir = require_shared("fixtures", "vg_loader")
    paths = {}
    for key, name in FILES.items():
        source, target = fixture_dir / name, tmp_path / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        target.chmod(0o755 if source.is_dir() else 0o644)
        paths[key] = str(target)
    return paths


def _build(paths: Dict[str, str], split: str = "train", **kwargs: Any) -> VGDataset:
    return VGDataset(split=split, num_val_im=10, **paths, **kwargs)


def _edit_h5(path: str, edit: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as h5:
        edit(h5)


def _edit_json(path: str, edit: Callable[[Any], Any]) -> None:
    content = json.loads(Path(path).read_text())
    Path(path).write_text(json.dumps(edit(content)))


def _first_row(h5: h5py.File, kind: str) -> int:
    """Global index of the first box or relation (``kind``) of image IMAGE_ROW."""
    return int(h5[f"img_to_first_{kind}"][IMAGE_ROW])


def _set_box(h5: h5py.File, box_in_image: int, values: list) -> None:
    boxes = h5["boxes_1024"][()]
    boxes[_first_row(h5, "box") + box_in_image] = values
    h5["boxes_1024"][...] = boxes


def test_error_type_is_a_value_error() -> None:
    assert issubclass(VGDataError, ValueError)


@pytest.mark.parametrize("key", sorted(FILES))
def test_missing_input_names_path_and_config_key(key: str, data: Dict[str, str]) -> None:
    path = Path(data[key])
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(VGDataError) as err:
        _build(data)
    message = str(err.value)
    assert str(path) in message and repr(key) in message
    assert "DATASETS.DATA_DIR" in message and "paths_catalog.py" in message


@pytest.mark.parametrize("h5_key", ["boxes_1024", "relationships", "img_to_first_rel", "split"])
def test_missing_h5_dataset_names_key_and_file(h5_key: str, data: Dict[str, str]) -> None:
    _edit_h5(data["roidb_file"], lambda h5: h5.__delitem__(h5_key))
    with pytest.raises(VGDataError, match=re.escape(h5_key)) as err:
        _build(data)
    assert data["roidb_file"] in str(err.value)


def test_file_that_is_not_hdf5(data: Dict[str, str]) -> None:
    Path(data["roidb_file"]).write_text("not an h5 file")
    with pytest.raises(VGDataError, match="HDF5") as err:
        _build(data)
    assert data["roidb_file"] in str(err.value)


def test_h5_datasets_of_different_lengths(data: Dict[str, str]) -> None:
    def shorten_predicates(h5: h5py.File) -> None:
        predicates = h5["predicates"][()]
        del h5["predicates"]
        h5["predicates"] = predicates[:-1]

    _edit_h5(data["roidb_file"], shorten_predicates)
    with pytest.raises(VGDataError, match="'predicates': 302") as err:
        _build(data)
    assert "'relationships': 303" in str(err.value)


@pytest.mark.parametrize("box_in_image, values", [(2, [30, 40, 0, 8]), (4, [30, 40, 8, -3])])
def test_box_without_extent_names_image_and_box(box_in_image: int, values: list, data: Dict[str, str]) -> None:
    _edit_h5(data["roidb_file"], lambda h5: _set_box(h5, box_in_image, values))
    with pytest.raises(VGDataError) as err:
        _build(data)
    message = str(err.value)
    assert f"box {box_in_image} of image id {IMAGE_ID}" in message and "w, h > 0" in message


def test_box_with_negative_centre_names_image_and_box(data: Dict[str, str]) -> None:
    _edit_h5(data["roidb_file"], lambda h5: _set_box(h5, 1, [-1, 40, 10, 10]))
    with pytest.raises(VGDataError, match=f"box 1 of image id {IMAGE_ID}"):
        load_graphs(data["roidb_file"], "test", -1, 10, True, False, image_ids=_image_ids(data))


def test_box_check_without_image_ids_names_h5_row(data: Dict[str, str]) -> None:
    _edit_h5(data["roidb_file"], lambda h5: _set_box(h5, 3, [5, 5, 0, 0]))
    with pytest.raises(VGDataError, match=f"box 3 of h5 row {IMAGE_ROW}"):
        load_graphs(data["roidb_file"], "train", -1, 10, True, False)


def _image_ids(paths: Dict[str, str]) -> list:
    return [info["image_id"] for info in load_image_filenames(paths["img_dir"], paths["image_file"])[1]]


def test_relation_outside_its_image_names_image(data: Dict[str, str]) -> None:
    def point_outside(h5: h5py.File) -> None:
        relationships = h5["relationships"][()]
        relationships[_first_row(h5, "rel") + 1, 1] = _first_row(h5, "box") - 1
        h5["relationships"][...] = relationships

    _edit_h5(data["roidb_file"], point_outside)
    with pytest.raises(VGDataError, match=f"relation 1 of image id {IMAGE_ID}"):
        _build(data, filter_non_overlap=False)


def test_box_range_outside_the_file_names_image(data: Dict[str, str]) -> None:
    def extend_last_range(h5: h5py.File) -> None:
        last = h5["img_to_last_box"][()]
        last[IMAGE_ROW] = 10_000
        h5["img_to_last_box"][...] = last

    _edit_h5(data["roidb_file"], extend_last_range)
    with pytest.raises(VGDataError, match=rf"image id {IMAGE_ID} .*box rows \[\d+, 10000\]"):
        _build(data)


def test_missing_image_file_names_image_id(data: Dict[str, str]) -> None:
    os.remove(os.path.join(data["img_dir"], "80.jpg"))
    with pytest.raises(VGDataError, match=r"image ids \[80\]") as err:
        _build(data, split="test")
    assert data["img_dir"] in str(err.value)


def test_extra_listed_image_without_file_is_skipped(data: Dict[str, str]) -> None:
    """The benchmark keeps only images that exist, so an extra unmatched entry is harmless."""
    _edit_json(data["image_file"], lambda entries: entries + [dict(entries[0], image_id=99999999)])
    assert len(_build(data, split="test")) == 16


def test_skip_list_ids_are_dropped(data: Dict[str, str]) -> None:
    filenames, info = load_image_filenames(data["img_dir"], data["image_file"], expected_count=H5_ROWS)
    assert len(filenames) == len(info) == H5_ROWS
    assert {1592, 1722}.isdisjoint(entry["image_id"] for entry in info)
    assert os.path.isfile(os.path.join(data["img_dir"], "1592.jpg"))


def test_image_list_shorter_than_h5_names_both_counts(data: Dict[str, str]) -> None:
    _edit_json(data["image_file"], lambda entries: entries[:-1])
    with pytest.raises(VGDataError, match=f"lists {H5_ROWS - 1} images .* has {H5_ROWS} image rows"):
        _build(data)


def test_real_vg150_count_applies_only_when_asked(data: Dict[str, str]) -> None:
    with pytest.raises(VGDataError, match=f"lists {H5_ROWS} images .* has {VG150_NUM_IMAGES} image rows"):
        load_image_filenames(data["img_dir"], data["image_file"], expected_count=VG150_NUM_IMAGES)
    assert len(load_image_filenames(data["img_dir"], data["image_file"])[0]) == H5_ROWS


def test_unchecked_image_files_are_all_listed(data: Dict[str, str]) -> None:
    os.remove(os.path.join(data["img_dir"], "80.jpg"))
    filenames, _ = load_image_filenames(data["img_dir"], data["image_file"], check_img_file=False,
                                        expected_count=H5_ROWS)
    assert os.path.join(data["img_dir"], "80.jpg") in filenames


def test_image_record_without_size_names_entry(data: Dict[str, str]) -> None:
    _edit_json(data["image_file"], lambda entries: [entries[0], {"image_id": 5}] + entries[1:])
    with pytest.raises(VGDataError, match=r"entry 1 of .*image_data.json lacks"):
        _build(data)


def test_malformed_json_names_file(data: Dict[str, str]) -> None:
    Path(data["dict_file"]).write_text("{not json")
    with pytest.raises(VGDataError, match=re.escape(data["dict_file"])):
        load_info(data["dict_file"])


def test_dictionary_without_a_table_names_key(data: Dict[str, str]) -> None:
    _edit_json(data["dict_file"], lambda info: {k: v for k, v in info.items() if k != "predicate_to_idx"})
    with pytest.raises(VGDataError, match="predicate_to_idx"):
        load_info(data["dict_file"])


def test_dictionary_with_gap_in_indices(data: Dict[str, str]) -> None:
    _edit_json(data["dict_file"], lambda info: dict(info, predicate_to_idx=dict(info["predicate_to_idx"], on=77)))
    with pytest.raises(VGDataError, match="consecutive"):
        load_info(data["dict_file"])


@pytest.mark.parametrize("split", ["training", "", "TEST"])
def test_unknown_split(split: str, data: Dict[str, str]) -> None:
    with pytest.raises(VGDataError, match="split should be one of"):
        _build(data, split=split)
    with pytest.raises(VGDataError, match="split should be one of"):
        load_graphs(data["roidb_file"], split, -1, 10, True, False)


def test_overlap_filter_outside_train_is_rejected_by_load_graphs(data: Dict[str, str]) -> None:
    with pytest.raises(VGDataError, match="train split only"):
        load_graphs(data["roidb_file"], "test", -1, 10, True, True)


def test_image_size_mismatch_is_logged_with_image_id(data: Dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    ds = _build(data, split="test")
    image_id = ds.img_info[0]["image_id"]

    def widen(entries: list) -> list:
        return [dict(e, width=e["width"] + 7) if e["image_id"] == image_id else e for e in entries]

    _edit_json(data["image_file"], widen)
    ds = _build(data, split="test")
    with caplog.at_level(logging.WARNING, logger="maskrcnn_benchmark.data.datasets.visual_genome"):
        img, target, _ = ds[0]
    assert any(str(image_id) in record.getMessage() for record in caplog.records)
    assert target.size == (img.size[0] + 7, img.size[1])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds[1]
    assert not caplog.records


def test_unreadable_image_names_image_id(data: Dict[str, str]) -> None:
    ds = _build(data, split="test")
    Path(ds.filenames[2]).write_bytes(b"not a jpeg")
    with pytest.raises(VGDataError, match=f"image id {ds.img_info[2]['image_id']}"):
        ds[2]


def test_empty_split_is_allowed(data: Dict[str, str]) -> None:
    """The benchmark's own statistics run builds a train split that can be empty; so can we."""
    ds = VGDataset(split="train", num_val_im=5000, **data)
    assert len(ds) == 0 and not np.any(ds.split_mask)
