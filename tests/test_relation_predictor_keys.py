"""Each relation predictor, built from the config at the benchmark's dimensions, has exactly the
benchmark's ``roi_heads.relation.predictor.*`` state_dict keys, order, shapes and parameter count."""
import json

import pytest
import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.modeling.registry import ROI_RELATION_PREDICTOR
from maskrcnn_benchmark.modeling.roi_heads.relation_head.registry_entries import make_roi_relation_predictor
from shared_data import require_shared

PREFIX = "roi_heads.relation.predictor."
PREDICTORS = ["MotifPredictor", "VCTreePredictor", "TransformerPredictor", "IMPPredictor", "CausalAnalysisPredictor"]


@pytest.fixture(scope="module")
def reference():
    return json.loads(require_shared("data", "reference", "state_dict_keys_x101fpn_motifs.json").read_text())


def _reference_keys(reference, name):
    if name == "MotifPredictor":
        entries = [k for k in reference["keys"] if k["key"].startswith(PREFIX)]
    else:
        entries = reference["other_predictors_relation_predictor_keys"][name]
    return [(k["key"][len(PREFIX):], list(k["shape"])) for k in entries], entries


@pytest.fixture(scope="module")
def glove_dir(tmp_path_factory):
    """A tiny 200-d GloVe file: a few class names get vectors, the rest start random."""
    folder = tmp_path_factory.mktemp("glove")
    rows = [" ".join([w] + ["%.3f" % (0.01 * i)] * 200) for i, w in enumerate(["start", "dog", "man", "tree"])]
    (folder / "glove.6B.200d.txt").write_text("\n".join(rows) + "\n")
    return str(folder)


def _benchmark_cfg(predictor: str, glove_dir: str, effect_analysis: bool = True):
    cfg = default_cfg.clone()
    cfg.merge_from_list([
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES", 151, "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 4096,
        "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor, "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", 51,
        "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", True, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", True,
        "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS", effect_analysis, "GLOVE_DIR", glove_dir,
        "MODEL.ROI_RELATION_HEAD.CAUSAL.SPATIAL_FOR_VISION", True,  # the yaml's Causal-MOTIFS
    ])
    return cfg


def _statistics():
    generator = torch.Generator().manual_seed(0)
    return {"obj_classes": ["__background__", "dog", "man", "tree"] + [f"class{i}" for i in range(147)],
            "rel_classes": ["__background__"] + [f"predicate {i}" for i in range(50)],
            "att_classes": ["__background__"],
            "pred_dist": torch.randn(151, 151, 51, generator=generator)}


@pytest.mark.parametrize("name", PREDICTORS)
def test_keys_and_shapes_match_the_benchmark(reference, glove_dir, name):
    expected, entries = _reference_keys(reference, name)
    predictor = make_roi_relation_predictor(_benchmark_cfg(name, glove_dir), 4096, _statistics())
    assert type(predictor).__name__ == name
    state = predictor.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == expected
    params = sum(p.numel() for p in predictor.parameters())
    assert params == reference["param_counts_by_predictor"][name]["relation_predictor_params"]
    if name == "MotifPredictor":
        buffers = {k for k, _ in predictor.named_buffers()}
        assert {e["key"][len(PREFIX):] for e in entries if e["kind"] == "buffer"} == buffers
    predictor.load_state_dict(state, strict=True)


def test_glove_vectors_and_statistics_initialise_the_tables(glove_dir):
    stats = _statistics()
    predictor = make_roi_relation_predictor(_benchmark_cfg("MotifPredictor", glove_dir), 4096, stats)
    ctx = predictor.context_layer
    assert torch.allclose(ctx.obj_embed1.weight[1], torch.full((200,), 0.01))  # "dog" is row 1 of 151
    assert torch.equal(ctx.obj_embed1.weight, ctx.obj_embed2.weight)
    assert torch.allclose(ctx.decoder_rnn.obj_embed.weight[0], torch.zeros(200))  # "start"
    assert torch.equal(ctx.decoder_rnn.obj_embed.weight[1:], ctx.obj_embed1.weight)
    assert torch.equal(predictor.freq_bias.obj_baseline.weight, stats["pred_dist"].view(-1, 51))
    assert torch.count_nonzero(ctx.untreated_obj_feat) == 0


def test_without_effect_analysis_there_are_no_untreated_buffers(glove_dir):
    predictor = make_roi_relation_predictor(
        _benchmark_cfg("MotifPredictor", glove_dir, effect_analysis=False), 4096, _statistics())
    assert not [k for k in predictor.state_dict() if "untreated" in k]


def test_a_benchmark_causal_motifs_state_dict_loads_strictly(reference, glove_dir):
    """Random values under the reference keys and shapes (a Causal-MOTIFS-SUM checkpoint's layout)."""
    expected, _ = _reference_keys(reference, "CausalAnalysisPredictor")
    predictor = make_roi_relation_predictor(_benchmark_cfg("CausalAnalysisPredictor", glove_dir), 4096, _statistics())
    generator = torch.Generator().manual_seed(0)
    checkpoint = {key: torch.rand(shape, generator=generator) for key, shape in expected}
    checkpoint["context_layer.pos_embed.1.num_batches_tracked"] = torch.tensor(7)
    predictor.load_state_dict(checkpoint, strict=True)
    assert torch.equal(predictor.untreated_spt, checkpoint["untreated_spt"])
    assert torch.equal(predictor.context_layer.untreated_dcd_feat, checkpoint["context_layer.untreated_dcd_feat"])


def test_registry_holds_the_five_predictors():
    assert set(PREDICTORS) <= set(ROI_RELATION_PREDICTOR)
