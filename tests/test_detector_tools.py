"""Detector pretraining and testing tools end to end on the tiny synthetic set."""
import json
import os
import subprocess
import sys

from relation_tool_args import CONFIG_DIR, REPO

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _run(tool, *args):
    cmd = [sys.executable, os.path.join(REPO, "tools", tool), "--config-file",
           os.path.join(CONFIG_DIR, "detector_R_18_FPN.yaml"), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def test_pretrain_then_pretest_write_box_metrics(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "detector")
    common = ["DATASETS.DATA_DIR", synthetic_data_dir, "OUTPUT_DIR", out, "SOLVER.IMS_PER_BATCH", "2",
              "TEST.IMS_PER_BATCH", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.TO_VAL", "False"]
    log = _run("detector_pretrain_net.py", "--skip-test", *common, "SOLVER.MAX_ITER", "2")
    assert "loss_objectness" in log and "loss_classifier" in log
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    log = _run("detector_pretest_net.py", *common)
    assert "Loading checkpoint from" in log and "model_final.pth" in log
    metrics = json.load(open(os.path.join(out, "inference", "synthetic_vg_test", "box_metrics.json")))
    assert len(metrics["coco_stats"]) == 12 and 0.0 <= metrics["mAP50"] <= 1.0
    assert metrics["num_images"] > 0
