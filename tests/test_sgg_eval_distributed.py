"""Under torchrun (2 processes, gloo, CPU) the evaluator gives the single-process numbers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.vg.fixture import fixture_mode, iter_fixture, load_fixture
from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy
from shared_data import require_shared

WORKER = Path(__file__).with_name("sgg_eval_dist_worker.py")
VG150_TREE = Path(__file__).parents[1] / "configs" / "hierarchy" / "vg150_cogtree_tree.json"
TOL = 1e-12  # sums are added in another order across processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flatten(value, prefix=""):
    """{"a.b.0": number-or-other} of a nested result, for comparing leaf by leaf."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, sub in enumerate(value) for k, v in _flatten(sub, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def test_two_processes_equal_one(tmp_path):
    """PredCls with the legacy ann ids: image 0 sits on rank 1, so the COCO numbering after the
    gather must follow the image ids for mAP50 to come out the same. The hierarchy metrics
    (VG150's CogTree parents) are on, so their sums are all-reduced too."""
    npz = str(require_shared("fixtures", "sgg_eval", "public", "predcls.npz"))
    out = tmp_path / "metrics.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(WORKER), npz, str(out), "--legacy-coco-ann-ids",
           "--tree", str(VG150_TREE)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    distributed = json.loads(out.read_text())

    fixture = load_fixture(npz)
    single = SGGEvaluator(fixture_mode(npz), num_predicates=50, zeroshot_triplets=fixture["zeroshot_triplets"],
                          keep_per_image=True, legacy_coco_ann_ids=True,
                          hierarchy=PredicateHierarchy.from_json(str(VG150_TREE)))
    for index, groundtruth, prediction in iter_fixture(fixture):
        single.add(groundtruth, prediction, image_id=index)
    single_path = tmp_path / "single.json"
    single.write_json(str(single_path))
    expected = _flatten(json.loads(single_path.read_text()))
    got = _flatten(distributed)

    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] is not None and abs(got[key] - value) <= TOL, key
        else:
            assert got[key] == value, key
    assert distributed["num_images"] == len(fixture["image_wh"])
    assert distributed["hierarchy"]["confusion"]["100"]["fine_annotated"]["matched"] > 0
    assert distributed["detection"]["mAP50"] < 1.0  # the quirk hit image 0 although rank 1 evaluated it
