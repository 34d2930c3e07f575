"""Relation training end to end on the tiny synthetic set: every predictor learns in PredCls,
SGCls and SGDet run through the tools, two-process training stays in sync, runs resume."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.engine.relation_train import freeze_detector
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.solver import make_optimizer
from relation_tool_args import REPO, config_file, free_port, small_overrides

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))


def _run_tool(tool, mode, data_dir, out_dir, max_iter, *extra, flags=(), timeout=300):
    cmd = [sys.executable, os.path.join(REPO, "tools", tool), "--config-file", config_file(mode), *flags,
           *small_overrides(data_dir, out_dir, max_iter), *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize("predictor", ["MotifPredictor", "VCTreePredictor", "TransformerPredictor", "IMPPredictor",
                                       "CausalAnalysisPredictor"])
def test_each_predictor_learns_in_predcls(synthetic_data_dir, tmp_path, predictor):
    cfg = load_config(config_file("predcls"), small_overrides(
        synthetic_data_dir, str(tmp_path), 1, **{"MODEL.ROI_RELATION_HEAD.PREDICTOR": predictor}))
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    freeze_detector(model)
    images, targets, _ = next(iter(make_data_loader(cfg, "train")))
    optimizer = make_optimizer(cfg, model, rl_factor=2.0)

    def loss(step_seed):
        torch.manual_seed(step_seed)
        losses = model(images, targets)
        return sum(losses.values())

    model.train()
    with torch.no_grad():
        before = loss(123).item()
    for step in range(15):
        optimizer.zero_grad()
        loss(step).backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 5.0)
        optimizer.step()
    with torch.no_grad():
        after = loss(123).item()
    assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_train_and_test_tools_write_metrics(synthetic_data_dir, tmp_path, mode):
    out = str(tmp_path / mode)
    _run_tool("relation_train_net.py", mode, synthetic_data_dir, out, 3, flags=["--skip-test"])
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    _run_tool("relation_test_net.py", mode, synthetic_data_dir, out, 3, "TEST.SAVE_PREDICTIONS", "True")
    folder = os.path.join(out, "inference", "synthetic_vg_test")
    metrics = json.load(open(os.path.join(folder, "metrics.json")))
    assert metrics["protocol"]["mode"] == mode
    assert metrics["num_images_evaluated"] > 0
    assert set(metrics["metrics"]["R@K"]) == {"20", "50", "100"}
    predictions = torch.load(os.path.join(folder, "predictions.pth"), weights_only=True)
    visual = json.load(open(os.path.join(folder, "visual_info.json")))
    assert len(predictions) == len(visual) == metrics["num_images"]


def test_two_process_training_keeps_ranks_identical(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "relation_dist_worker.py"),
           config_file("predcls"), *small_overrides(synthetic_data_dir, out, 3)]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank0, rank1 = (torch.load(os.path.join(out, f"rank{r}.pth"), weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 0
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    initial = build_detection_model(load_config(config_file("predcls"), small_overrides(synthetic_data_dir, out, 3)))
    assert any(not torch.equal(initial.state_dict()[k], v) for k, v in rank0.items()), "nothing trained"


def test_killed_run_resumes_at_its_last_checkpoint(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "resume")
    cmd = [sys.executable, os.path.join(REPO, "tools", "relation_train_net.py"), "--config-file",
           config_file("predcls"), "--skip-test",
           *small_overrides(synthetic_data_dir, out, 40, **{"SOLVER.CHECKPOINT_PERIOD": 3})]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = os.path.join(out, "last_checkpoint")
    deadline = time.time() + 240
    while not os.path.exists(last) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert os.path.exists(last), "no checkpoint was written before the deadline"
    saved = open(last).read().strip()
    saved_iter = torch.load(os.path.join(out, saved), weights_only=True)["iteration"]
    assert saved_iter > 0 and saved_iter % 3 == 0

    finished = _run_tool("relation_train_net.py", "predcls", synthetic_data_dir, out, saved_iter + 3,
                         "SOLVER.CHECKPOINT_PERIOD", "3", flags=["--skip-test"])
    assert f"Start training at iteration {saved_iter} of {saved_iter + 3}" in finished.stdout + finished.stderr
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert final["iteration"] == saved_iter + 3
