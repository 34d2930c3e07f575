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


def test_every_method_builds_a_valid_config(tmp_path):
    args = framework_study.parse_args(["--methods", *framework_study.METHODS, "--seeds", "0", "3",
                                       "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    runs = framework_study.study_runs(args)
    assert len(runs) == 2 * len(framework_study.METHODS)
    for run in runs:
        seed, mode, predictor, method = run.key
        assert run.out_dir == str(tmp_path / "out" / seed / mode / predictor / method)
        config_file = run.command[run.command.index("--config-file") + 1]
        cfg = load_config(config_file, list(run.command[run.command.index("--config-file") + 2:]))
        assert cfg.OUTPUT_DIR == run.out_dir and cfg.SOLVER.MAX_ITER == 300
        assert cfg.DATASETS.TEST == ("synthetic_vg_test", "synthetic_vg_test_truth")
        assert all(name in TRAINING_FRAMEWORKS for name in framework_names(cfg))
    hml = next(r for r in runs if r.key[3] == "hml_paper")
    assert "[100, 200]" in hml.command


def test_unknown_method_is_an_error(capsys):
    with pytest.raises(SystemExit):
        framework_study.parse_args(["--methods", "no_such"])
    assert "unknown method 'no_such'" in capsys.readouterr().err
