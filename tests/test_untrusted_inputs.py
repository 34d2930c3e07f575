"""Untrusted files (issue 17): a checkpoint whose pickle would run code is refused and runs nothing; a
crafted h5 header (10^9 boxes) and deeply nested JSON fail fast with a clear error in bounded memory."""
import json
import os
import runpy
import shutil
import subprocess
import sys

import h5py
import pytest
import torch

from maskrcnn_benchmark.data.datasets.synthetic_vg import make_synthetic_vg
from maskrcnn_benchmark.data.datasets.visual_genome import VGDataError, load_image_filenames
from maskrcnn_benchmark.utils.checkpoint import CheckpointLoadError, load_checkpoint_file
from relation_tool_args import REPO, config_file, small_overrides

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
MEMORY_LIMIT_MIB = 512  # the claimed boxes alone would take 16 GB
HOSTILE_BOXES = 10 ** 9
NESTING = 100_000


class CreatesMarker:
    """Unpickling this calls open(path, "w"): the file appears if the loader ran code from the checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("untrusted_data")
    make_synthetic_vg(str(folder / "synthetic_vg"), num_images=8, seed=5)
    return str(folder)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path, zip_format, monkeypatch, data_dir):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": CreatesMarker(str(marker))}, evil, _use_new_zipfile_serialization=zip_format)
    monkeypatch.delenv("SGG_ALLOW_UNSAFE_LOAD", raising=False)
    with pytest.raises(CheckpointLoadError, match=r"refuses.*SGG_ALLOW_UNSAFE_LOAD=1"):
        load_checkpoint_file(str(evil))
    assert not marker.exists()

    tool = os.path.join(REPO, "tools", "relation_train_net.py")  # through the tool: the detector checkpoint
    monkeypatch.setattr(sys, "argv", [tool, "--config-file", config_file("predcls"), "--skip-test",
                                      *small_overrides(data_dir, str(tmp_path / "out"), 2,
                                                       **{"MODEL.PRETRAINED_DETECTOR_CKPT": str(evil)})])
    with pytest.raises(CheckpointLoadError, match="SGG_ALLOW_UNSAFE_LOAD"):
        runpy.run_path(tool, run_name="__main__")
    assert not marker.exists()

    monkeypatch.setenv("SGG_ALLOW_UNSAFE_LOAD", "1")  # the file really is hostile: trusted loading runs it
    load_checkpoint_file(str(evil))
    assert marker.exists()


def _copy(data_dir, tmp_path):
    shutil.copytree(os.path.join(data_dir, "synthetic_vg"), tmp_path / "synthetic_vg")
    return tmp_path / "synthetic_vg"


def test_hostile_h5_and_json_sizes_fail_fast_in_bounded_memory(data_dir, tmp_path):
    folder = _copy(data_dir, tmp_path)
    with h5py.File(folder / "VG-SGG-with-attri.h5", "r+") as h5:
        del h5["boxes_1024"]
        h5.create_dataset("boxes_1024", shape=(HOSTILE_BOXES, 4), dtype="int32", chunks=(1024, 4))
    assert os.path.getsize(folder / "VG-SGG-with-attri.h5") < 10 ** 6
    (folder / "VG-SGG-dicts-with-attri.json").write_text("[" * NESTING + "]" * NESTING)
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bounded_memory_worker.py"),
           str(MEMORY_LIMIT_MIB), os.path.join(REPO, "tools", "check_dataset.py"), "--config-file",
           config_file("predcls"), "DATASETS.DATA_DIR", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"boxes_1024: claims shape ({HOSTILE_BOXES}, 4)" in proc.stdout, proc.stdout[-3000:]
    assert "VG-SGG-dicts-with-attri.json: dict_file: is nested too deeply" in proc.stdout, proc.stdout[-3000:]


def test_deeply_nested_json_is_a_vg_data_error(data_dir, tmp_path):
    folder = _copy(data_dir, tmp_path)
    (folder / "image_data.json").write_text("[" * NESTING + "]" * NESTING)
    with pytest.raises(VGDataError, match="nested too deeply"):
        load_image_filenames(str(folder / "VG_100K"), str(folder / "image_data.json"))
