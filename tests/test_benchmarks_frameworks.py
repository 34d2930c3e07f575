"""benchmarks/ebm_overhead.py and benchmarks/framework_overhead.py run end to end at tiny dimensions
(so the scripts do not rot): the JSON last line has every ratio, finite and positive."""
import json
import math
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(REPO, "configs", "synthetic_vg", "relation_R_18_FPN_predcls.yaml")
TINY_OPTS = ["MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "32", "EBM.NODE_DIM", "16", "EBM.EDGE_DIM", "16",
             "EBM.POOLING_DIM", "16", "EBM.SAMPLER.ITERS", "2"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run_script(name, *args):
    command = [sys.executable, os.path.join(REPO, "benchmarks", name), *args]
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def finite_positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_ebm_overhead_tiny():
    result, stdout = run_script("ebm_overhead.py", "--full-config", SMALL, "--min-size", "64", "--small-min-size", "64",
                                "--small-batch", "2", "--boxes", "6", "--rels", "3", "--steps", "2",
                                "--small-steps", "1", "--warmup", "0", "--mem-nodes", "12", "--mem-images", "2",
                                *TINY_OPTS)
    assert finite_positive(result["ratio_full"]) and finite_positive(result["ratio_small"])
    for dims in ("full", "small"):
        r = result[dims]
        assert r["ratio"] == result[f"ratio_{dims}"]
        assert r["sgld_iters"] == 2 and r["ebm_dims"] == [16, 16, 16]
        assert {"loss_ebm_cd", "loss_ebm_l2"} <= set(r["loss_terms"]["ebm"])
        assert not {"loss_ebm_cd", "loss_ebm_l2"} & set(r["loss_terms"]["baseline"])
        assert r["trainable_params"]["ebm"] == r["trainable_params"]["baseline"] + r["energy_params"]
        b = r["breakdown"]
        assert b["sgld_sampling"] > 0 and b["sgld_energy_forward"] > 0 and b["energy_forward_pos_neg"] > 0
        assert b["energy_backward"] > 0 and b["energy_grad_clip"] > 0 and b["ebm_losses"] >= b["sgld_sampling"]
    assert len(result["full"]["step_s"]["ebm"]) == 2 and result["small"]["batch"] == 2
    assert result["full"]["pairs_per_step"] == {"sampled": 30, "positive": 3}  # all 6 x 5 pairs; the GT relations
    memory = result["memory"]
    assert memory["pairs_per_image"] == 12 * 11 and memory["fit_max_rel_residual"] < 1e-6
    assert memory["dense_vs_edge_list_max_energy_diff"] < 1e-4
    checked = memory["check_one_image_sampled_graph_measured_mb"]
    for layout in ("edge_list", "dense"):
        assert abs(checked[layout] - memory["one_image"][layout]["sampled_graph_mb"]) <= 0.1
        assert memory["2_images"][layout]["peak_mb"] > memory["one_image"][layout]["peak_mb"] > 0
    assert memory["2_images"]["dense_over_edge_list"] > memory["one_image"]["dense_over_edge_list"]
    assert "extra EBM time by part" in stdout


def test_framework_overhead_tiny():
    result, stdout = run_script("framework_overhead.py", "--min-size", "64", "--batch", "2", "--boxes", "6",
                                "--rels", "3", "--steps", "1", "--warmup", "0", "--stage1-steps", "1", *TINY_OPTS)
    keys = ("cb_ce", "if_ce", "lskd_iterative", "lskd_synchronous", "hierarchical", "hierarchical_factorised",
            "ebm", "hml")
    for key in keys:
        assert finite_positive(result[f"{key}_ratio"]), key
        assert result["frameworks"][key]["ratio"] == result[f"{key}_ratio"]
        assert len(result["frameworks"][key]["step_s"]) == 1
    frameworks = result["frameworks"]
    assert frameworks["lskd_iterative"]["distilling"] and frameworks["lskd_synchronous"]["distilling"]
    assert "loss_lskd_aux" in frameworks["lskd_synchronous"]["loss_terms"]
    assert {"loss_ebm_cd", "loss_ebm_l2"} <= set(frameworks["ebm"]["loss_terms"])
    assert {"loss_cr", "loss_mr"} <= set(frameworks["hml"]["loss_terms"])
    assert frameworks["hierarchical_factorised"]["trainable_params"] > result["baseline_trainable_params"]
    assert frameworks["hierarchical"]["trainable_params"] == result["baseline_trainable_params"]
    assert result["dims"] == "small" and result["image_size"] == [85, 64]
    assert "framework" in stdout.splitlines()[1]
