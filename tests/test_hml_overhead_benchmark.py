"""benchmarks/hml_overhead.py runs end to end at tiny dimensions (so the script does not rot)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "hml_overhead.py")
TINY = ["--config", os.path.join(REPO, "configs", "synthetic_vg", "relation_R_18_FPN_predcls.yaml"),
        "--min-size", "64", "--boxes", "6", "--rels", "3", "--steps", "2", "--warmup", "0", "--threads", "1"]


@pytest.mark.parametrize("mode,fused", [("paper", True), ("official", False)])
def test_hml_overhead_tiny(mode, fused):
    command = [sys.executable, SCRIPT, *TINY, "--hml-mode", mode, "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "32",
               "HML.FUSED_MR_GRAD", str(fused)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ratio"] == pytest.approx(result["hml_s"] / result["baseline_s"], rel=1e-2)
    assert len(result["step_s"]["baseline"]) == len(result["step_s"]["hml"]) == 2
    assert 0 < result["num_mr_params"] < result["trainable_params"]
    assert result["hml_mode"] == mode and result["image_size"] == [85, 64]
    assert {"loss_cr", "loss_mr"} <= set(result["loss_terms"]["hml"])
    assert not {"loss_cr", "loss_mr"} & set(result["loss_terms"]["baseline"])
    assert result["breakdown"]["teacher_forward"] > 0 and result["breakdown"]["importance_update"] > 0
    assert result["fused_mr_grad"] == fused and "mr_gradient" in result["breakdown"]
    assert "extra HML time by part" in done.stdout
