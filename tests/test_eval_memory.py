"""Streamed evaluation (issue 17): SGDet-sized images (80 detections, 6,320 scored pairs each) through the
SGG evaluator grow the peak RSS by at most a fixed bound, so a split of thousands of images fits."""
import json
import os
import subprocess
import sys

from relation_tool_args import REPO

WARM_IMAGES, IMAGES = 30, 300
GROWTH_BOUND_MIB = 8.0  # 28 KB per image kept at most; one image's scores alone are 1.3 MB


def test_sgdet_evaluation_peak_rss_grows_within_a_fixed_bound():
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eval_memory_worker.py")
    proc = subprocess.run([sys.executable, worker, str(WARM_IMAGES), str(IMAGES)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["pairs_per_image"] == 80 * 79 and figures["images"] == IMAGES
    assert figures["growth_mib"] <= GROWTH_BOUND_MIB, figures
