"""CausalAnalysisPredictor at toy sizes (CAUSAL.md section 7): key layout of each variation, init,
moving averages, the effect formulas against hand computations, the frequency lookup, the
box-pair geometry, the losses and the guard rails."""
import math

import pytest
import torch
import torch.nn.functional as F

from maskrcnn_benchmark.modeling.roi_heads.relation_head.causal_predictor import CausalAnalysisPredictor
from maskrcnn_benchmark.modeling.roi_heads.relation_head.freq_bias import FrequencyBias
from maskrcnn_benchmark.modeling.roi_heads.relation_head.model_motifs import LSTMContext
from maskrcnn_benchmark.modeling.roi_heads.relation_head.roi_relation_predictors import (
    MotifPredictor, VCTreePredictor, global_pair_indices)
from maskrcnn_benchmark.modeling.roi_heads.relation_head.utils_causal import box_pair_info, normalised_box_info
from maskrcnn_benchmark.structures.bounding_box import BoxList
from test_relation_predictors import FEAT, NUM_OBJ, NUM_REL, make_batch

HIDDEN, EMBED, RATIO = 8, 4, 0.0005
EFFECTS = ("TDE", "NIE", "TE")


def causal(mode="predcls", context="motifs", fusion="sum", sfv=True, sep=False, ea=True, effect="none",
           hidden=HIDDEN, seed=0):
    torch.manual_seed(seed)
    kwargs = {} if context == "vtranse" else {"dropout_rate": 0.0}
    return CausalAnalysisPredictor(torch.randn(NUM_OBJ + 1, EMBED), NUM_REL, FEAT,
                                   torch.randn(NUM_OBJ, NUM_OBJ, NUM_REL).log_softmax(-1), hidden_dim=hidden,
                                   pooling_dim=FEAT, union_dim=FEAT, context_layer=context, fusion_type=fusion,
                                   separate_spatial=sep, spatial_for_vision=sfv, effect_analysis=ea,
                                   effect_type=effect, mode=mode, **kwargs)


def averages(predictor):
    return {k: v for k, v in predictor.named_buffers() if "untreated" in k or "avg_post_ctx" in k}


def set_trained_averages(predictor, seed=7):
    """Positive random averages, as after training (the features they average are mostly ReLU outputs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for buffer in averages(predictor).values():
            buffer.copy_(torch.rand(buffer.shape, generator=gen))


def union_input(batch, sep, seed=3):
    union = batch[5]
    if not sep:
        return union
    return union, torch.rand(union.shape, generator=torch.Generator().manual_seed(seed))


def eval_logits(predictor, batch, union):
    with torch.no_grad():
        return torch.cat(predictor(batch[0], batch[1], None, None, batch[4], union)[1])


def joint_lookup(bias, probs):
    """The benchmark's frequency lookup by probability: outer product, then the [C*C, P] table."""
    joint = probs[:, :, 0, None] * probs[:, :, 1][:, None, :]
    return joint.reshape(probs.shape[0], -1) @ bias.obj_baseline.weight


def treated_and_untreated_context(predictor, batch, union):
    """c and c_avg of CAUSAL.md 3.2 from the two context passes."""
    with torch.no_grad():
        factual = predictor.pair_terms(batch[4], batch[0], batch[1])
        average = predictor.pair_terms(batch[4], batch[0], batch[1], ctx_average=True)
        ctx, avg_ctx = factual.ctx, average.ctx
        if predictor.separate_spatial:
            ctx = ctx * union[1]
            avg_ctx = avg_ctx * predictor.untreated_conv_spt[None]
        if predictor.spatial_for_vision:
            ctx = ctx * predictor.spt_emb(factual.boxes)
            avg_ctx = avg_ctx * predictor.spt_emb(predictor.untreated_spt[None])
    return factual, average, ctx, avg_ctx


# ----------------------------------------------------------------------------- layout and init
def shapes(predictor):
    return {k: tuple(v.shape) for k, v in predictor.state_dict().items()}


def test_key_variations_of_the_benchmark_layout():
    base = shapes(causal())
    assert set(shapes(causal(fusion="gate"))) - set(base) == {"ctx_gate_fc.weight", "ctx_gate_fc.bias"}
    assert set(base) - set(shapes(causal(sfv=False))) == {f"spt_emb.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    no_ea = shapes(causal(ea=False))
    assert set(base) - set(no_ea) == {f"context_layer.untreated_{n}_feat" for n in ("dcd", "obj", "edg")}
    assert {"untreated_spt", "untreated_conv_spt", "avg_post_ctx", "untreated_feat"} <= set(no_ea)
    assert list(base)[:4] == ["untreated_spt", "untreated_conv_spt", "avg_post_ctx", "untreated_feat"]

    vtranse = shapes(causal(context="vtranse"))
    assert not [k for k in vtranse if k.startswith("post_cat")] and "ctx_compress.bias" not in vtranse
    assert vtranse["post_emb.weight"] == (2 * FEAT, HIDDEN) and vtranse["ctx_compress.weight"] == (NUM_REL, FEAT)
    assert {k for k in vtranse if k.startswith("context_layer.")} == {
        "context_layer." + k for k in ("untreated_obj_feat", "untreated_edg_feat", "obj_embed1.weight",
                                       "obj_embed2.weight", "pred_layer.weight", "pred_layer.bias",
                                       "fc_layer.weight", "fc_layer.bias")} | {
        k for k in base if k.startswith("context_layer.pos_embed.")}
    assert vtranse["context_layer.untreated_edg_feat"] == (FEAT + 128,)

    for context, plain in (("motifs", MotifPredictor), ("vctree", VCTreePredictor)):
        torch.manual_seed(0)
        reference = plain(torch.randn(NUM_OBJ + 1, EMBED), NUM_REL, FEAT, torch.randn(NUM_OBJ, NUM_OBJ, NUM_REL),
                          hidden_dim=HIDDEN, pooling_dim=FEAT, union_dim=FEAT, effect_analysis=True)
        ours = shapes(causal(context=context))
        assert ({k: v for k, v in ours.items() if k.startswith("context_layer.")}
                == {k: v for k, v in shapes(reference).items() if k.startswith("context_layer.")})
        assert ours["post_cat.0.weight"] == (FEAT, 2 * HIDDEN) and "rel_compress.weight" not in ours


def test_initialisation():
    predictor = causal(hidden=64)
    assert all(torch.count_nonzero(b) == 0 for b in averages(predictor).values())
    assert abs(predictor.post_emb.weight.std().item() / (10 / math.sqrt(64)) - 1) < 0.05
    for layer in (predictor.post_emb, predictor.post_cat[0], predictor.ctx_compress, predictor.vis_compress,
                  predictor.spt_emb[0], predictor.spt_emb[2]):
        assert torch.count_nonzero(layer.bias) == 0
    xavier_std = math.sqrt(2.0 / (FEAT + NUM_REL))
    assert abs(predictor.vis_compress.weight.std().item() / xavier_std - 1) < 0.25
    torch.manual_seed(0)
    torch.randn(NUM_OBJ + 1, EMBED)
    assert torch.equal(predictor.freq_bias.obj_baseline.weight,
                       torch.randn(NUM_OBJ, NUM_OBJ, NUM_REL).log_softmax(-1).view(-1, NUM_REL))


# ----------------------------------------------------------------------------- moving averages
def test_averages_follow_the_moving_average_rule_in_training_only():
    predictor = causal(sep=True)
    batch = make_batch("predcls")
    union = union_input(batch, sep=True)
    set_trained_averages(predictor)
    before = {k: v.clone() for k, v in averages(predictor).items()}
    for effect in ("none",) + EFFECTS:
        predictor.eval()
        predictor.effect_type = effect
        eval_logits(predictor, batch, union)
        assert all(torch.equal(before[k], v) for k, v in averages(predictor).items()), effect

    seen = []
    predictor.ctx_compress.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    predictor.train()
    proposals, pairs, labels, binarys, roi, _ = batch
    predictor(proposals, pairs, labels, binarys, roi, union)
    boxes = normalised_box_info(proposals)
    sub, obj = global_pair_indices([len(p) for p in proposals], pairs, roi.device)
    gt = torch.cat([p.get_field("labels") for p in proposals])
    ctx = predictor.context_layer
    inputs = {"untreated_feat": union[0], "untreated_conv_spt": union[1], "avg_post_ctx": seen[0],
              "untreated_spt": box_pair_info(boxes[sub], boxes[obj]),
              "context_layer.untreated_edg_feat": torch.cat((ctx.obj_embed2(gt), roi), 1)}
    after = averages(predictor)
    for name, rows in inputs.items():
        assert torch.allclose(after[name], (1 - RATIO) * before[name] + RATIO * rows.mean(0), atol=1e-7), name
    assert all(not torch.equal(before[k], v) for k, v in after.items())


def test_the_hml_teachers_switch_freezes_every_average():
    predictor = causal(mode="sgcls").train()
    for module in predictor.modules():
        if hasattr(module, "track_averages"):
            module.track_averages = False
    predictor(*make_batch("sgcls"))
    assert all(torch.count_nonzero(b) == 0 for b in averages(predictor).values())


# ----------------------------------------------------------------------------- effects
@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
def test_sum_tde_is_the_context_difference_alone(mode):
    predictor = causal(mode=mode, effect="TDE").eval()
    set_trained_averages(predictor)
    batch = make_batch(mode)
    out = eval_logits(predictor, batch, batch[5])
    _, _, ctx, avg_ctx = treated_and_untreated_context(predictor, batch, batch[5])
    assert torch.allclose(out, (ctx - avg_ctx) @ predictor.ctx_compress.weight.t(), atol=1e-5)
    assert torch.allclose(eval_logits(predictor, batch, torch.randn_like(batch[5]) * 5), out, atol=1e-5)
    with torch.no_grad():
        predictor.freq_bias.obj_baseline.weight.add_(torch.randn_like(predictor.freq_bias.obj_baseline.weight))
    assert torch.allclose(eval_logits(predictor, batch, batch[5]), out, atol=1e-5)


@pytest.mark.parametrize("context", ["motifs", "vctree", "vtranse"])
def test_gate_effects_are_differences_of_hand_computed_fusions(context):
    predictor = causal(mode="sgcls", context=context, fusion="gate", sep=True).eval()
    set_trained_averages(predictor)
    batch = make_batch("sgcls")
    union = union_input(batch, sep=True)
    factual, average, ctx, avg_ctx = treated_and_untreated_context(predictor, batch, union)
    bias = predictor.freq_bias

    def fusion(c, probs):
        return predictor.ctx_compress(c) * torch.sigmoid(predictor.vis_compress(union[0]) + joint_lookup(bias, probs)
                                                         + predictor.ctx_gate_fc(c))

    with torch.no_grad():
        treated, no_ctx, untreated = (fusion(ctx, factual.probs), fusion(avg_ctx, factual.probs),
                                      fusion(avg_ctx, average.probs))
    expected = {"TDE": treated - no_ctx, "NIE": no_ctx - untreated, "TE": treated - untreated}
    for effect in EFFECTS:
        predictor.effect_type = effect
        out, scale = eval_logits(predictor, batch, union), expected[effect].abs().max()
        assert scale > 0 and (out - expected[effect]).abs().max() < 1e-4 * scale, effect


@pytest.mark.parametrize("context", ["motifs", "vctree"])
def test_nie_is_zero_in_predcls_and_none_is_the_hard_label_fusion(context):
    predictor = causal(context=context, effect="NIE").eval()
    set_trained_averages(predictor)
    batch = make_batch("predcls")
    assert torch.count_nonzero(eval_logits(predictor, batch, batch[5])) == 0
    predictor.effect_type = "none"
    factual, _, ctx, _ = treated_and_untreated_context(predictor, batch, batch[5])
    rows = factual.labels[:, 0] * NUM_OBJ + factual.labels[:, 1]
    with torch.no_grad():
        expected = (predictor.vis_compress(batch[5]) + predictor.ctx_compress(ctx)
                    + predictor.freq_bias.obj_baseline.weight[rows])
    assert torch.allclose(eval_logits(predictor, batch, batch[5]), expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_a_multi_image_test_batch_gives_each_images_own_effects(mode):
    predictor = causal(mode=mode, effect="TE").eval()
    set_trained_averages(predictor)
    proposals, pairs, _, _, roi, union = make_batch(mode, sizes=(7, 4, 5))
    together = eval_logits(predictor, (proposals, pairs, None, None, roi, union), union)
    objects = torch.tensor([0] + [len(p) for p in proposals]).cumsum(0)
    relations = torch.tensor([0] + [len(p) for p in pairs]).cumsum(0)
    alone = [eval_logits(predictor, ([proposals[i]], [pairs[i]], None, None, roi[objects[i]:objects[i + 1]], None),
                         union[relations[i]:relations[i + 1]]) for i in range(len(proposals))]
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)


# ----------------------------------------------------------------------------- building blocks
def test_probability_lookup_is_the_joint_matrix_product_without_the_matrix():
    gen = torch.Generator().manual_seed(0)
    bias = FrequencyBias(torch.randn(6, 6, 5, generator=gen))
    probs = torch.rand(2100, 6, 2, generator=gen).softmax(1)  # more rows than one block
    assert torch.allclose(bias.index_with_probability(probs), joint_lookup(bias, probs), atol=1e-5)
    assert bias.index_with_probability(probs[:0]).shape == (0, 5)


def test_box_pair_info_layout_and_normalisation():
    proposal = BoxList(torch.tensor([[0.0, 0.0, 19.0, 9.0], [10.0, 5.0, 29.0, 29.0], [50.0, 40.0, 59.0, 49.0]]),
                       (80, 60))
    info = normalised_box_info([proposal])  # divided by max(80, 60, 100) = 100
    assert torch.allclose(info[0], torch.tensor([0.0, 0.0, 19, 9, 10, 5, 20, 10]) / 100)
    pair = box_pair_info(info[[0, 0]], info[[1, 2]])
    assert pair.shape == (2, 32)
    assert torch.equal(pair[:, :8], info[[0, 0]]) and torch.equal(pair[:, 8:16], info[[1, 2]])
    union, inter = pair[0, 16:24], pair[0, 24:]
    assert torch.allclose(union[:4], torch.tensor([0.0, 0.0, 0.29, 0.29]))
    assert torch.allclose(union[6:], torch.tensor([1.29, 1.29]))  # the "+1" in normalised units
    assert torch.allclose(inter[:4], torch.tensor([0.10, 0.05, 0.19, 0.09]))
    assert torch.count_nonzero(pair[1, 24:]) == 0  # disjoint boxes
    assert normalised_box_info([BoxList(proposal.bbox, (300, 150))])[0, 2] == pytest.approx(19 / 300)


@pytest.mark.parametrize("context,fusion,expected", [
    ("motifs", "sum", {"auxiliary_ctx", "auxiliary_vis", "auxiliary_frq"}),
    ("motifs", "gate", {"auxiliary_ctx"}),
    ("vctree", "sum", {"auxiliary_ctx", "auxiliary_vis", "auxiliary_frq", "binary_loss"}),
    ("vtranse", "gate", {"auxiliary_ctx"}),
])
def test_training_losses_and_none_in_eval(context, fusion, expected):
    predictor = causal(mode="sgcls", context=context, fusion=fusion).train()
    batch = make_batch("sgcls")
    _, rel_dists, losses = predictor(*batch)
    assert set(losses) == expected
    labels = torch.cat(batch[2])
    (sum(losses.values()) + F.cross_entropy(torch.cat(rel_dists), labels)).backward()
    assert predictor.spt_emb[0].weight.grad.abs().sum() > 0
    if fusion == "sum":
        assert torch.allclose(losses["auxiliary_vis"], F.cross_entropy(predictor.vis_compress(batch[5]), labels))
    predictor.eval()
    with torch.no_grad():
        assert predictor(batch[0], batch[1], None, None, batch[4], batch[5])[2] == {}


def test_guard_rails():
    with pytest.raises(ValueError, match="EFFECT_TYPE should be one of none, TDE, NIE, TE, got 'TED'"):
        causal(effect="TED")
    with pytest.raises(ValueError, match="EFFECT_ANALYSIS True"):
        causal(ea=False, effect="TDE")
    with pytest.raises(ValueError, match="CONTEXT_LAYER should be one of motifs, vctree, vtranse"):
        causal(context="lstm")
    with pytest.raises(ValueError, match="FUSION_TYPE should be one of sum, gate"):
        causal(fusion="mul")
    with pytest.raises(ValueError, match="no up_dim"):
        CausalAnalysisPredictor(torch.randn(NUM_OBJ + 1, EMBED), NUM_REL, FEAT, torch.randn(NUM_OBJ, NUM_OBJ, NUM_REL),
                                hidden_dim=HIDDEN, pooling_dim=FEAT, union_dim=FEAT + 1)
    with pytest.raises(ValueError, match="EFFECT_ANALYSIS True"):
        LSTMContext(torch.randn(NUM_OBJ + 1, EMBED), FEAT, hidden_dim=HIDDEN)(
            make_batch("predcls")[4], make_batch("predcls")[0], ctx_average=True)

    untrained = causal(mode="sgcls", effect="TDE").eval()  # e.g. a checkpoint without the averages
    batch = make_batch("sgcls")
    with pytest.raises(RuntimeError, match="all zero .*untreated_edg_feat.*untreated_dcd_feat.*untreated_spt"):
        eval_logits(untrained, batch, batch[5])
    untrained.effect_type = "none"
    assert eval_logits(untrained, batch, batch[5]).shape == (batch[5].shape[0], NUM_REL)
