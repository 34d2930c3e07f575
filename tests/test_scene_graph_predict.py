"""Scene graphs for any images: training writes self-contained model files, plain checkpoints
still load and export, the predict tool turns a folder (bad files included) into JSON, PNG and
index.html without the dataset, skips what is done, shards over two processes, and takes boxes in PredCls."""
import json
import logging
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import hml_patch  # noqa: F401  (config groups the training tool saves in the model's config)
import training_frameworks  # noqa: F401
from maskrcnn_benchmark.data import get_dataset_statistics
from maskrcnn_benchmark.data.transforms import build_transforms
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.scene_graphs.drawing import node_layers
from maskrcnn_benchmark.scene_graphs.images import list_images, parse_boxes
from maskrcnn_benchmark.scene_graphs.model_file import MODEL_FILE_KEY, ModelFile, ModelFileError
from maskrcnn_benchmark.scene_graphs.predict import PredictSettings, mode_overrides, predict_shard
from maskrcnn_benchmark.scene_graphs.records import Triplet
from maskrcnn_benchmark.structures import to_image_list
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer
from relation_tool_args import REPO, config_file, free_port, small_overrides

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
NO_DATA = ["DATASETS.DATA_DIR", "/nonexistent/datasets", "GLOVE_DIR", "/nonexistent/glove", "OUTPUT_DIR",
           "/nonexistent/output"]


def _run(args, timeout=240):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def trained(synthetic_data_dir, tmp_path_factory):
    """A 2-iteration SGDet MOTIFS model trained by the training tool: (output folder, overrides)."""
    out = str(tmp_path_factory.mktemp("sgdet_model"))
    overrides = small_overrides(synthetic_data_dir, out, 2)
    _run([os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file", config_file("sgdet"),
          "--skip-test", *overrides])
    return out, overrides


@pytest.fixture(scope="module")
def image_folder(synthetic_data_dir, tmp_path_factory):
    """Three synthetic images, one 640x480 JPEG in a subfolder and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    source = os.path.join(synthetic_data_dir, "synthetic_vg", "VG_100K")
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        shutil.copy(os.path.join(source, name), folder / name)
    (folder / "trip").mkdir()
    Image.open(os.path.join(source, "4.jpg")).resize((640, 480)).save(folder / "trip" / "big.jpg", quality=90)
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    return str(folder)


def test_training_checkpoint_is_self_contained_and_predicts_as_the_dataset_model(trained, synthetic_data_dir):
    out, overrides = trained
    checkpoint = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert {"model", "optimizer", "scheduler", "iteration", MODEL_FILE_KEY} <= set(checkpoint)
    entry = checkpoint[MODEL_FILE_KEY]
    cfg = load_config(config_file("sgdet"), overrides)
    stats = get_dataset_statistics(cfg)
    assert entry["obj_classes"] == list(stats["obj_classes"]) and entry["rel_classes"] == list(stats["rel_classes"])
    assert torch.equal(entry["fg_matrix"], torch.as_tensor(stats["fg_matrix"]))
    assert yaml.safe_load(entry["config"])["MODEL"]["ROI_RELATION_HEAD"]["USE_GT_BOX"] is False
    assert entry["word_vectors"]["vectors"].shape[1] == cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM
    assert "chair" in entry["word_vectors"]["words"]

    model_file = ModelFile.read(os.path.join(out, "model_final.pth"))
    standalone = model_file.build(model_file.config(NO_DATA))
    reference = build_detection_model(cfg)
    DetectronCheckpointer(cfg, reference).load(os.path.join(out, "model_final.pth"), with_optim=False)
    reference.eval()
    image = Image.open(os.path.join(synthetic_data_dir, "synthetic_vg", "VG_100K", "5.jpg")).convert("RGB")
    batch = to_image_list([build_transforms(cfg, is_train=False)(image, None)[0]], 32)
    with torch.no_grad():
        expected, got = reference(batch)[0], standalone.model(batch)[0]
    assert len(got) > 0
    for name in ("pred_labels", "pred_scores", "rel_pair_idxs", "pred_rel_scores"):
        assert torch.equal(expected.get_field(name), got.get_field(name)), name


def test_plain_checkpoint_loads_as_before_and_export_makes_it_self_contained(trained, tmp_path):
    out, overrides = trained
    weights = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["model"]
    plain = str(tmp_path / "plain.pth")
    torch.save({"model": weights, "iteration": 2}, plain)
    cfg = load_config(config_file("sgdet"), overrides)
    model = build_detection_model(cfg)
    assert DetectronCheckpointer(cfg, model).load(plain, with_optim=False) == {"iteration": 2}
    with pytest.raises(ModelFileError, match="export_model.py"):
        ModelFile.read(plain)

    exported = str(tmp_path / "exported.pth")
    _run([os.path.join(REPO, "tools", "export_model.py"), "--config-file", config_file("sgdet"),
          "--checkpoint", plain, "--out", exported, *overrides])
    data = torch.load(exported, weights_only=True)
    assert set(data) == {"model", MODEL_FILE_KEY}
    model_file = ModelFile.read(exported)
    built = model_file.build(model_file.config(NO_DATA)).model
    assert all(torch.equal(built.state_dict()[k], v) for k, v in weights.items())


def test_predict_tool_turns_a_folder_into_json_png_and_index_and_a_rerun_skips_it(trained, image_folder, tmp_path):
    out_dir = str(tmp_path / "graphs")
    args = [os.path.join(REPO, "tools", "predict_scene_graphs.py"), "--model",
            os.path.join(trained[0], "model_final.pth"), "--images", image_folder, "--out", out_dir, *NO_DATA]
    first = _run(args)
    summary = json.load(open(os.path.join(out_dir, "summary.json")))
    assert (summary["images"], summary["written"], summary["in_index"]) == (5, 4, 4)
    assert [f["image"] for f in summary["failed"]] == ["broken.jpg"]
    assert "Skipping broken.jpg" in first.stdout + first.stderr

    record = json.load(open(os.path.join(out_dir, "graphs", "trip", "big.jpg.json")))
    for key in ("boxes", "labels", "scores", "rel_pairs", "rel_labels", "rel_scores", "img_file"):
        assert key in record
    assert (record["width"], record["height"], record["mode"]) == (640, 480, "sgdet")
    assert len(record["rel_pairs"]) == len(record["rel_label_names"]) > 0
    assert record["triplet_scores"] == sorted(record["triplet_scores"], reverse=True)
    boxes = np.array(record["boxes"])
    assert boxes[:, [0, 2]].max() <= 640 and boxes[:, [1, 3]].max() <= 480
    drawing = cv2.imread(os.path.join(out_dir, "graphs", "trip", "big.jpg.png"))
    assert drawing.shape[0] == 480 and drawing.shape[1] > 640
    page = open(os.path.join(out_dir, "index.html")).read()
    assert page.count('<section class="card"') == 4 and 'src="graphs/trip/big.jpg.png"' in page

    done = os.path.getmtime(os.path.join(out_dir, "graphs", "1.jpg.json"))
    model_file = ModelFile.read(os.path.join(trained[0], "model_final.pth"))
    sg = model_file.build(model_file.config(NO_DATA))
    again = predict_shard(sg, list_images(image_folder), out_dir, None, PredictSettings(), torch.device("cpu"),
                          logging.getLogger("test"))
    assert again.written == 0 and [f["image"] for f in again.failures] == ["broken.jpg"]
    assert os.path.getmtime(os.path.join(out_dir, "graphs", "1.jpg.json")) == done


def test_two_processes_share_the_images_and_rank_0_writes_the_index(trained, image_folder, tmp_path):
    out_dir = str(tmp_path / "graphs")
    _run(["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
          os.path.join(REPO, "tools", "predict_scene_graphs.py"), "--model",
          os.path.join(trained[0], "model_final.pth"), "--images", image_folder, "--out", out_dir,
          "--batch-size", "1", *NO_DATA], timeout=300)
    summary = json.load(open(os.path.join(out_dir, "summary.json")))
    assert (summary["processes"], summary["written"], summary["in_index"]) == (2, 4, 4)
    assert [f["image"] for f in summary["failed"]] == ["broken.jpg"]


def test_predcls_uses_the_given_boxes_and_labels(trained, image_folder, tmp_path):
    model_file = ModelFile.read(os.path.join(trained[0], "model_final.pth"))
    sg = model_file.build(model_file.config(mode_overrides("predcls") + NO_DATA))
    given = {"1.jpg": {"boxes": [[10, 20, 80, 90], [60, 50, 200, 180], [100, 10, 150, 60]],
                       "labels": ["chair", "cup", 3]},
             "2.jpg": {"boxes": [[10, 20, 80, 90]]}}  # no labels: unusable in PredCls
    entries = [e for e in list_images(image_folder) if e.name in ("1.jpg", "2.jpg", "3.jpg")]
    report = predict_shard(sg, entries, str(tmp_path), parse_boxes(given, sg.obj_classes),
                           PredictSettings(mode="predcls"), torch.device("cpu"), logging.getLogger("test"))
    assert report.written == 1
    assert sorted(f["image"] for f in report.failures) == ["2.jpg", "3.jpg"]
    record = json.load(open(tmp_path / "graphs" / "1.jpg.json"))
    assert record["boxes"] == given["1.jpg"]["boxes"]
    assert record["label_names"] == ["chair", "cup", sg.obj_classes[3]]
    assert len(record["rel_pairs"]) == 6  # every ordered pair of the three boxes


def test_boxes_file_entries_are_checked_one_by_one():
    classes = ["__background__", "cup", "table"]
    parsed = parse_boxes({"a.jpg": {"boxes": [[0, 0, 5, 5]], "labels": ["cup"]},
                          "b.jpg": {"boxes": [[0, 0, 5, 5]], "labels": ["sofa"]},
                          "c.jpg": {"boxes": [[5, 5, 0, 0]]},
                          "d.jpg": {"labels": [1]}}, classes)
    assert parsed["a.jpg"].labels.tolist() == [1]
    assert all(isinstance(parsed[k], ValueError) for k in ("b.jpg", "c.jpg", "d.jpg"))
    assert "sofa" in str(parsed["b.jpg"])


def test_layers_put_subjects_left_of_their_objects_and_survive_cycles():
    def t(s, o):
        return Triplet(s, "a", "on", o, "b", 1.0)
    assert node_layers([0, 1, 2, 3], [t(0, 1), t(1, 2), t(0, 2), t(3, 2)]) == {0: 0, 1: 1, 2: 2, 3: 0}
    cyclic = node_layers([0, 1], [t(0, 1), t(1, 0)])
    assert set(cyclic.values()) <= {0, 1}
