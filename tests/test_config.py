"""The config carries the benchmark's keys, merges YAML and KEY VALUE overrides, rejects unknown keys."""
import pytest

from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.config.paths_catalog import DatasetCatalog


def test_benchmark_defaults():
    assert cfg.MODEL.RELATION_ON is False
    assert cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR == "MotifPredictor"
    assert cfg.MODEL.ROI_RELATION_HEAD.USE_GT_BOX is True
    assert cfg.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL is False
    assert cfg.MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE == 64
    assert cfg.MODEL.RPN.ASPECT_RATIOS == (0.5, 1.0, 2.0)
    assert cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES == 81
    assert cfg.INPUT.PIXEL_MEAN == [102.9801, 115.9465, 122.7717]
    assert cfg.SOLVER.SCHEDULE.TYPE == "WarmupMultiStepLR"
    assert cfg.SOLVER.IMS_PER_BATCH == 16
    assert cfg.TEST.RELATION.IOU_THRESHOLD == 0.5
    assert cfg.DATASETS.DATA_DIR == "datasets"
    assert cfg.DTYPE == "float32"


def test_yaml_and_overrides(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "MODEL:\n"
        "  RELATION_ON: True\n"
        "  ROI_RELATION_HEAD:\n"
        "    USE_GT_OBJECT_LABEL: True\n"
        "    BATCH_SIZE_PER_IMAGE: 1024\n"
        "  RPN:\n"
        "    ASPECT_RATIOS: (0.23232838, 0.63365731, 1.28478321, 3.15089189)\n"
        "INPUT:\n"
        "  MIN_SIZE_TRAIN: (600,)\n"
        "DATASETS:\n"
        "  TRAIN: (\"VG_stanford_filtered_with_attribute_train\",)\n")
    c = cfg.clone()
    c.merge_from_file(str(yaml_file))
    c.merge_from_list(["SOLVER.IMS_PER_BATCH", "12", "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "False",
                       "DATASETS.DATA_DIR", "/data/sgg"])
    assert c.MODEL.RELATION_ON and c.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL
    assert c.MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE == 1024
    assert c.MODEL.RPN.ASPECT_RATIOS[0] == pytest.approx(0.23232838)
    assert c.INPUT.MIN_SIZE_TRAIN == (600,)
    assert c.DATASETS.TRAIN == ("VG_stanford_filtered_with_attribute_train",)
    assert c.SOLVER.IMS_PER_BATCH == 12 and c.MODEL.ROI_RELATION_HEAD.USE_GT_BOX is False
    assert c.DATASETS.DATA_DIR == "/data/sgg"
    assert cfg.SOLVER.IMS_PER_BATCH == 16, "merging into a clone must not touch the defaults"


def test_unknown_keys_are_named(tmp_path):
    c = cfg.clone()
    with pytest.raises(KeyError, match="MODEL.ROI_RELATION_HEAD.NOT_A_KEY"):
        c.merge_from_list(["MODEL.ROI_RELATION_HEAD.NOT_A_KEY", "1"])
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("SOLVER:\n  MAX_ITERS: 10\n")
    with pytest.raises(KeyError, match="SOLVER.MAX_ITERS"):
        c.merge_from_file(str(yaml_file))


def test_catalog_resolves_relative_to_data_dir():
    data = DatasetCatalog.get("VG_stanford_filtered_with_attribute_val", "datasets")
    assert data["factory"] == "VGDataset"
    args = data["args"]
    assert args["split"] == "val" and args["num_val_im"] == 5000
    assert args["roidb_file"] == "datasets/vg/VG-SGG-with-attri.h5"
    assert args["img_dir"] == "datasets/vg/VG_100K"
    assert args["image_file"] == "datasets/vg/image_data.json"
    assert args["dict_file"] == "datasets/vg/VG-SGG-dicts-with-attri.json"


def test_catalog_rejects_unknown_names():
    with pytest.raises(KeyError, match="VG_stanford_filtered_with_attribute"):
        DatasetCatalog.get("coco_2017_train", "datasets")
    with pytest.raises(KeyError):
        DatasetCatalog.get("VG_stanford_filtered_with_attribute_dev", "datasets")


def test_synthetic_catalog_needs_its_info_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="DATASETS.DATA_DIR"):
        DatasetCatalog.get("synthetic_vg_train", str(tmp_path))
    (tmp_path / "synthetic_vg").mkdir()
    (tmp_path / "synthetic_vg" / "synthetic_vg_info.json").write_text('{"num_val_im": 7}')
    args = DatasetCatalog.get("synthetic_vg_val", str(tmp_path))["args"]
    assert args["num_val_im"] == 7 and args["split"] == "val"


def test_base_files_are_merged_first_and_cycles_are_errors(tmp_path):
    from maskrcnn_benchmark.config import cfg as defaults

    (tmp_path / "base.yaml").write_text("SOLVER:\n  MAX_ITER: 7\n  BASE_LR: 0.5\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nSOLVER:\n  BASE_LR: 0.25\n")
    config = defaults.clone()
    config.merge_from_file(str(tmp_path / "child.yaml"))
    assert (config.SOLVER.MAX_ITER, config.SOLVER.BASE_LR) == (7, 0.25)
    (tmp_path / "loop.yaml").write_text("_BASE_: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        defaults.clone().merge_from_file(str(tmp_path / "loop.yaml"))


def test_seed_makes_start_up_random_draws_repeat(tmp_path):
    import numpy as np
    import torch

    from maskrcnn_benchmark.engine.defaults import setup

    def draws(seed):
        setup("", ["SEED", str(seed), "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / f"s{seed}")],
              logger_name="seed_test")
        return float(np.random.rand()), float(torch.rand(1))

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
