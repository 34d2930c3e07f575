"""tools/framework_study.py: every method's command is a valid config for the relation tools."""
import sys

import pytest

import hml_patch  # noqa: F401  (HML keys)
import training_frameworks  # noqa: F401  (the other frameworks' keys)
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.engine.framework import TRAINING_FRAMEWORKS, framework_names
from relation_tool_args import REPO

sys.path.insert(0, f"{REPO}/tools")
import framework_study  # noqa: E402


def config_of(command):
    """The config a relation tool's argv loads (flags such as --skip-test and --test left out)."""
    start = command.index("--config-file")
    opts = [item for item in command[start + 2:] if item not in ("--skip-test", "--test")]
    return load_config(command[start + 1], opts)


def test_every_method_builds_a_valid_config(tmp_path):
    args = framework_study.parse_args(["--all", "--seeds", "0", "3", "--modes", "predcls", "sgcls",
                                       "--predictors", "MotifPredictor", "VCTreePredictor",
                                       "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    runs = framework_study.study_runs(args)
    assert len(runs) == 2 * 2 * 2 * len(framework_study.METHODS)
    for run in runs:
        seed, mode, predictor, method = run.key
        assert run.out_dir == str(tmp_path / "out" / seed / mode / predictor / method)
        cfg = config_of(run.command)
        assert cfg.OUTPUT_DIR == run.out_dir and cfg.SOLVER.MAX_ITER == 300
        assert cfg.DATASETS.TEST == ("synthetic_vg_test", "synthetic_vg_test_truth")
        assert cfg.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL == (mode == "predcls")
        assert all(name in TRAINING_FRAMEWORKS for name in framework_names(cfg))
        if method == "causal_tde":
            assert cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR == "CausalAnalysisPredictor"
            assert cfg.MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER == {"MotifPredictor": "motifs",
                                                                       "VCTreePredictor": "vctree"}[predictor]
        else:
            assert cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR == predictor
        # D3's threshold is chosen on val after training, then the model is tested with it
        tuned = framework_study.METHODS[method].tune_threshold
        assert ("--skip-test" in run.command) == tuned and len(run.then) == int(tuned)
        if tuned:
            tune = run.then[0]
            assert tune[1].endswith("tune_refine_threshold.py") and "--test" in tune
            assert config_of(tune) == cfg
    hml = next(r for r in runs if r.key[3] == "hml_paper")
    assert "[100, 200]" in hml.command
    lskd = config_of(next(r for r in runs if r.key[3] == "lskd_iterative").command)
    assert lskd.LSKD.REFRESH_PERIOD == 30
    lskd = config_of(next(r for r in runs if r.key[3] == "lskd_synchronous").command)
    assert lskd.LSKD.WARMUP_ITERS == 12


def test_the_main_job_and_its_recommendation():
    args = framework_study.parse_args([])
    assert args.methods == list(framework_study.MAIN_JOB) and args.seeds == [0]
    assert framework_study.RECOMMENDED in framework_study.MAIN_JOB
    assert "ebm" not in framework_study.MAIN_JOB  # only with --all: it alone would take the 10-minute budget


def test_unknown_method_is_an_error(capsys):
    with pytest.raises(SystemExit):
        framework_study.parse_args(["--methods", "no_such"])
    assert "unknown method 'no_such'" in capsys.readouterr().err


def test_seed_margins_compare_with_the_best_other_single_framework():
    def value(mean, coarse):
        return {"truth": {"Mean@50": mean, "coarse_mR@50": coarse}}
    methods = {"ce": (0.3, 1.0), "hierarchical": (0.85, 0.9), "hml_paper": (0.87, 1.0),
               "hml_paper+hierarchical": (0.9, 0.7)}
    runs = [framework_study.StudyRun(("seed1", "predcls", "MotifPredictor", m), "", (), ()) for m in methods]
    values = {run.key: value(*methods[run.key[3]]) for run in runs}
    _, margins = framework_study.seed_margins(runs, values)
    combo = margins["seed1/predcls/MotifPredictor/hml_paper+hierarchical"]
    assert combo["best_other_single"] == "hml_paper"  # a combination is not a single framework
    assert combo["margin"] == pytest.approx(0.03) and combo["coarse_share_of_ce"] == pytest.approx(0.7)
    single = margins["seed1/predcls/MotifPredictor/hierarchical"]
    assert single["best_other_single"] == "hml_paper" and single["margin"] == pytest.approx(-0.02)
    alone = [run for run in runs if run.key[3] == "ce"]  # nothing to compare with: no row, no error
    assert framework_study.seed_margins(alone, values)[1] == {}
