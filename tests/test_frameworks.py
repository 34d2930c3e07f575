"""The training-framework interface: selection, stacking conflicts, the re-weighting frameworks,
and a short run of every registered framework with each predictor through the benchmark's runner."""
from __future__ import annotations

import logging

import pytest
import torch

import hml_patch  # noqa: F401  (registers HML)
import training_frameworks  # noqa: F401  (registers the other frameworks)
from maskrcnn_benchmark.data.build import get_dataset_statistics
from maskrcnn_benchmark.engine.defaults import RunContext, load_config
from maskrcnn_benchmark.engine.framework import (TRAINING_FRAMEWORKS, FrameworkRunner, build_frameworks,
                                                 check_stackable, framework_names)
from maskrcnn_benchmark.modeling.roi_heads.relation_head.loss import (class_balanced_weights,
                                                                      inverse_frequency_weights)
from relation_tool_args import REPO, config_file, small_overrides
from training_frameworks.reweighting import training_counts

PREDICTORS = ("MotifPredictor", "VCTreePredictor", "TransformerPredictor", "IMPPredictor")
# Every single-run framework with the overrides of a 3-iteration run (HML has its own stage tests);
# "Name:variant" runs framework Name with other overrides.
HIERARCHY_TREE = f"{REPO}/configs/hml/synthetic_vg_hierarchy_tree.json"
FRAMEWORK_RUNS = {
    "ClassBalancedCE": {},
    "InverseFrequencyCE": {},
    "HierarchicalLoss:marginal": {"HIER.TREE": HIERARCHY_TREE, "HIER.FORM": "marginal"},
    "HierarchicalLoss:factorised": {"HIER.TREE": HIERARCHY_TREE, "HIER.FORM": "factorised"},
    "LSKD:iterative": {"LSKD.STRATEGY": "iterative", "LSKD.REFRESH_PERIOD": 1},
    "LSKD:synchronous": {"LSKD.STRATEGY": "synchronous", "LSKD.WARMUP_ITERS": 1},
    "EBM": {"EBM.NODE_DIM": 32, "EBM.EDGE_DIM": 32, "EBM.POOLING_DIM": 32, "EBM.SAMPLER.ITERS": 2},
}


def _cfg(data_dir, out_dir, max_iter=3, **extra):
    return load_config(config_file("predcls"), small_overrides(data_dir, str(out_dir), max_iter, **extra))


def _ctx(cfg) -> RunContext:
    return RunContext(cfg=cfg, logger=logging.getLogger("test_frameworks"), distributed=False, local_rank=0,
                      device=torch.device("cpu"))


def test_selection_and_hml_shorthand(synthetic_data_dir, tmp_path):
    cfg = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['ClassBalancedCE']"})
    assert framework_names(cfg) == ["ClassBalancedCE"]
    hml = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.HML": True})
    assert framework_names(hml) == ["HML"]
    twice = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['HML']",
                                                   "MODEL.ROI_RELATION_HEAD.HML": True})
    assert framework_names(twice) == ["HML"]
    duplicate = _cfg(synthetic_data_dir, tmp_path,
                     **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['ClassBalancedCE', 'ClassBalancedCE']"})
    with pytest.raises(ValueError, match="'ClassBalancedCE' twice"):
        framework_names(duplicate)
    unknown = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['NoSuch']"})
    with pytest.raises(KeyError, match=r"Unknown training framework \(MODEL.ROI_RELATION_HEAD.FRAMEWORKS\) 'NoSuch'; registered: .*'HML'"):
        build_frameworks(unknown)


def test_a_conflict_names_both_frameworks(synthetic_data_dir, tmp_path):
    cfg = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['ClassBalancedCE']",
                                                 "MODEL.ROI_RELATION_HEAD.HML": True})
    with pytest.raises(ValueError, match="'ClassBalancedCE' and 'HML' cannot be stacked: both change the "
                                         "relation loss's per-predicate weights"):
        build_frameworks(cfg)

    with pytest.raises(ValueError, match="'Odd' claims unknown parts"):
        check_stackable({"Odd": frozenset({"everything"})})


def test_reweighting_weights(synthetic_data_dir, tmp_path):
    counts = torch.tensor([0.0, 100.0, 10.0, 0.0, 1.0])
    inverse = inverse_frequency_weights(counts, [1, 2, 3, 4], background_weight=0.5)
    raw = torch.tensor([1 / 100, 1 / 10, 1.0, 1.0], dtype=torch.float64)  # a zero count counts as 1
    assert torch.allclose(inverse, torch.cat([torch.tensor([0.5]), raw / raw.mean()]).float())

    cfg = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['ClassBalancedCE']",
                                                 "REWEIGHT.CB_GAMMA": 0.99})
    statistics = get_dataset_statistics(cfg)
    framework, = build_frameworks(cfg, statistics)
    counts = training_counts(statistics)
    expected = class_balanced_weights(counts, range(1, counts.numel()), 0.99, 1.0)
    assert torch.equal(framework.weights, expected)
    assert counts.sum() > 0 and framework.weights.mean() > 0


@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("name", sorted(FRAMEWORK_RUNS))
def test_every_framework_trains_with_every_predictor(synthetic_data_dir, tmp_path, name, predictor):
    """Three iterations through the benchmark's runner; the framework's losses are finite and the
    relation head's parameters move."""
    framework = name.split(":")[0]
    cfg = _cfg(synthetic_data_dir, tmp_path, **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": f"['{framework}']",
                                                 "MODEL.ROI_RELATION_HEAD.PREDICTOR": predictor,
                                                 "SEED": 0}, **FRAMEWORK_RUNS[name])
    frameworks = build_frameworks(cfg)
    assert [f.name for f in frameworks] == [framework]
    assert isinstance(frameworks[0], TRAINING_FRAMEWORKS[framework])
    torch.manual_seed(0)
    runner = FrameworkRunner(cfg, _ctx(cfg), frameworks)
    model = runner.run()
    head = model.roi_heads.relation
    assert head.loss_hooks == [f.relation_losses for f in frameworks]
    trained = torch.load(tmp_path / "model_final.pth", weights_only=True)["model"]
    assert trained.keys() == model.state_dict().keys()
    assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())
