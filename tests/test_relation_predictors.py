"""Relation predictors at small dimensions: PredCls / SGCls / SGDet forward and backward, training
lowers the relation loss, and the building blocks agree with plain (unbatched) formulations."""
import pytest
import torch
import torch.nn.functional as F

from maskrcnn_benchmark.modeling.roi_heads.relation_head.freq_bias import FrequencyBias
from maskrcnn_benchmark.modeling.roi_heads.relation_head.model_motifs import DecoderRNN, run_in_order
from maskrcnn_benchmark.modeling.roi_heads.relation_head.model_transformer import TransformerEncoder
from maskrcnn_benchmark.modeling.roi_heads.relation_head.model_vctree import VCTreeLSTMContext
from maskrcnn_benchmark.modeling.roi_heads.relation_head.roi_relation_predictors import (
    IMPPredictor, MotifPredictor, TransformerPredictor, VCTreePredictor)
from maskrcnn_benchmark.modeling.roi_heads.relation_head.utils_motifs import encode_box_info, sort_within_images
from maskrcnn_benchmark.modeling.roi_heads.relation_head.utils_treelstm import TreeLSTMDownCell, TreeLSTMUpCell
from maskrcnn_benchmark.modeling.roi_heads.relation_head.utils_vctree import (build_forest, get_overlap_info,
                                                                               grow_tree, to_binary)
from maskrcnn_benchmark.structures.bounding_box import BoxList

NUM_OBJ, NUM_REL, FEAT, EMBED, HIDDEN = 11, 6, 48, 16, 32
MODES = ["predcls", "sgcls", "sgdet"]
NAMES = ["MotifPredictor", "VCTreePredictor", "TransformerPredictor", "IMPPredictor"]


def build(name, mode, dropout=0.2, union_dim=FEAT, seed=0):
    torch.manual_seed(seed)
    vectors = torch.randn(NUM_OBJ + 1, EMBED)
    pred_dist = torch.randn(NUM_OBJ, NUM_OBJ, NUM_REL).log_softmax(-1)
    common = dict(hidden_dim=HIDDEN, pooling_dim=FEAT, union_dim=union_dim, mode=mode)
    if name == "MotifPredictor":
        return MotifPredictor(vectors, NUM_REL, FEAT, pred_dist, dropout_rate=dropout, effect_analysis=True,
                              **common)
    if name == "VCTreePredictor":
        return VCTreePredictor(vectors, NUM_REL, FEAT, pred_dist, dropout_rate=dropout, effect_analysis=True,
                               **common)
    if name == "TransformerPredictor":
        return TransformerPredictor(vectors, NUM_REL, FEAT, pred_dist, obj_layers=2, edge_layers=1, num_head=2,
                                    inner_dim=32, key_dim=8, val_dim=8, dropout_rate=dropout / 2, **common)
    return IMPPredictor(NUM_OBJ, NUM_REL, FEAT, pooling_dim=FEAT, union_dim=union_dim, hidden_dim=HIDDEN, mode=mode)


def make_batch(mode, sizes=(7, 4), seed=1):
    """Proposals with the fields of each mode, all ordered pairs, random labels and features."""
    gen = torch.Generator().manual_seed(seed)
    proposals, pairs, rel_labels, binarys = [], [], [], []
    for n in sizes:
        xy = torch.rand(n, 2, generator=gen) * 60
        boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=gen) * 30], 1)
        proposal = BoxList(boxes, (100, 80))
        labels = torch.randint(1, NUM_OBJ, (n,), generator=gen)
        if mode == "sgdet":
            labels[0] = 0  # a detection matched to no GT box
        proposal.add_field("labels", labels)
        if mode != "predcls":
            proposal.add_field("predict_logits", torch.randn(n, NUM_OBJ, generator=gen))
        if mode == "sgdet":
            proposal.add_field("pred_labels", proposal.get_field("predict_logits")[:, 1:].argmax(1) + 1)
            proposal.add_field("boxes_per_cls", boxes[:, None] + torch.rand(n, NUM_OBJ, 4, generator=gen))
        grid_i, grid_j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        off_diag = grid_i != grid_j
        pair = torch.stack([grid_i[off_diag], grid_j[off_diag]], 1)
        label = torch.randint(0, NUM_REL, (pair.shape[0],), generator=gen)
        binary = torch.zeros(n, n, dtype=torch.int64)
        fg = pair[label > 0]
        binary[fg[:, 0], fg[:, 1]] = 1
        binary[fg[:, 1], fg[:, 0]] = 1
        proposals.append(proposal)
        pairs.append(pair)
        rel_labels.append(label)
        binarys.append(binary)
    num_rels = sum(p.shape[0] for p in pairs)
    roi = torch.randn(sum(sizes), FEAT, generator=gen)
    union = torch.randn(num_rels, FEAT, generator=gen)
    return proposals, pairs, rel_labels, binarys, roi, union


def total_loss(predictor, batch, mode):
    proposals, pairs, rel_labels, binarys, roi, union = batch
    obj_dists, rel_dists, add_losses = predictor(proposals, pairs, rel_labels, binarys, roi, union)
    loss_rel = F.cross_entropy(torch.cat(rel_dists), torch.cat(rel_labels))
    loss = loss_rel + sum(add_losses.values())
    if mode != "predcls":
        loss = loss + F.cross_entropy(torch.cat(obj_dists), torch.cat([p.get_field("labels") for p in proposals]))
    return loss, loss_rel, obj_dists, rel_dists, add_losses


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_train_and_test_forward(name, mode):
    predictor = build(name, mode)
    batch = make_batch(mode)
    proposals, pairs = batch[0], batch[1]
    predictor.train()
    loss, _, obj_dists, rel_dists, add_losses = total_loss(predictor, batch, mode)
    assert [tuple(d.shape) for d in obj_dists] == [(len(p), NUM_OBJ) for p in proposals]
    assert [tuple(d.shape) for d in rel_dists] == [(p.shape[0], NUM_REL) for p in pairs]
    assert set(add_losses) == ({"binary_loss"} if name == "VCTreePredictor" else set())
    loss.backward()
    grads = {k: p.grad for k, p in predictor.named_parameters()}
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    head = "context_layer.rel_fc.weight" if name == "IMPPredictor" else "post_cat.weight"
    assert grads[head].abs().sum() > 0
    if mode == "predcls" and name == "MotifPredictor":
        assert all(g is None for k, g in grads.items() if "decoder_rnn" in k)
    if mode != "predcls" and name != "IMPPredictor":
        assert grads["context_layer.obj_embed1.weight"].abs().sum() > 0

    predictor.eval()
    with torch.no_grad():
        obj_eval, rel_eval, extra = predictor(proposals, pairs, None, None, batch[4], batch[5])
    assert extra == {}
    assert [tuple(d.shape) for d in rel_eval] == [tuple(d.shape) for d in rel_dists]
    assert [tuple(d.shape) for d in obj_eval] == [tuple(d.shape) for d in obj_dists]
    if mode == "predcls":
        labels = torch.cat([p.get_field("labels") for p in proposals])
        assert torch.equal(torch.cat(obj_eval).argmax(1), labels)


@pytest.mark.parametrize("name", NAMES)
def test_training_lowers_the_relation_loss(name):
    predictor = build(name, "predcls", dropout=0.0)
    batch = make_batch("predcls", sizes=(6, 5), seed=3)
    optimizer = torch.optim.Adam(predictor.parameters(), lr=3e-3)
    predictor.train()
    losses = []
    for _ in range(30):
        loss, loss_rel, *_ = total_loss(predictor, batch, "predcls")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss_rel.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_up_dim_and_no_vision():
    predictor = MotifPredictor(torch.randn(NUM_OBJ + 1, EMBED), NUM_REL, FEAT, None, hidden_dim=HIDDEN,
                               pooling_dim=FEAT, union_dim=20, use_vision=True)
    assert predictor.up_dim.in_features == 20 and not hasattr(predictor, "freq_bias")
    proposals, pairs, labels, binarys, roi, _ = make_batch("predcls")
    _, rel_dists, _ = predictor(proposals, pairs, labels, binarys, roi, torch.randn(sum(len(p) for p in pairs), 20))
    assert rel_dists[0].shape == (pairs[0].shape[0], NUM_REL)
    predictor.use_vision = False
    _, rel_dists, _ = predictor(proposals, pairs, labels, binarys, roi, None)
    assert rel_dists[1].shape == (pairs[1].shape[0], NUM_REL)


def test_untreated_features_move_only_in_training():
    predictor = build("MotifPredictor", "sgcls")
    batch = make_batch("sgcls")
    predictor.eval()
    with torch.no_grad():
        predictor(*batch)
    ctx = predictor.context_layer
    assert torch.count_nonzero(ctx.untreated_obj_feat) == 0
    predictor.train()
    predictor(*batch)
    obj_pre_mean = ctx.untreated_obj_feat / 0.0005
    assert torch.allclose(obj_pre_mean[:FEAT], batch[4].mean(0), atol=1e-5)
    assert torch.count_nonzero(ctx.untreated_dcd_feat) > 0 and torch.count_nonzero(ctx.untreated_edg_feat) > 0


# ----------------------------------------------------------------------------- building blocks
def test_encode_box_info_uses_plus_one_widths():
    proposal = BoxList(torch.tensor([[10.0, 20.0, 29.0, 59.0]]), (100, 200))
    info = encode_box_info([proposal])[0]
    expected = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.29, 0.295, 0.04])
    assert torch.allclose(info, expected)


def test_run_in_order_matches_per_image_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 4, bidirectional=True)
    feats = torch.randn(7, 5)
    orders = sort_within_images(torch.rand(7), [4, 3])
    out = run_in_order(lstm, feats, orders)
    for order in orders:
        expected, _ = lstm(feats[order])
        assert torch.allclose(out[order], expected, atol=1e-6)


def test_decoder_batches_like_single_images_and_uses_teacher_labels():
    torch.manual_seed(0)
    decoder = DecoderRNN(torch.randn(NUM_OBJ + 1, EMBED), inputs_dim=10, hidden_dim=12, dropout=0.2)
    sequences = [torch.randn(3, 10), torch.randn(5, 10), torch.randn(0, 10)]
    decoder.eval()
    dists, preds = decoder(sequences)
    for seq, dist, pred in zip(sequences, dists, preds):
        alone_dist, alone_pred = decoder([seq])
        assert torch.allclose(dist, alone_dist[0], atol=1e-6) and torch.equal(pred, alone_pred[0])
        assert torch.equal(pred, dist[:, 1:].argmax(1) + 1) if len(seq) else pred.numel() == 0
    decoder.train()
    labels = [torch.tensor([3, 0, 5]), torch.tensor([1, 2, 0, 4, 4]), torch.zeros(0, dtype=torch.int64)]
    dists, preds = decoder(sequences, labels)
    for label, dist, pred in zip(labels, dists, preds):
        fg = label > 0
        assert torch.equal(pred[fg], label[fg])
        assert torch.equal(pred[~fg], dist[~fg, 1:].argmax(1) + 1)


def test_tree_growth_and_binary_form():
    # node 2 has the highest mean score and becomes the root
    score = torch.tensor([[0.0, 0.9, 0.1, 0.2],
                          [0.1, 0.0, 0.3, 0.8],
                          [0.7, 0.6, 0.0, 0.5],
                          [0.1, 0.1, 0.2, 0.0]]).numpy()
    root, children = grow_tree(score)
    assert root == 2
    assert children == [[1], [3], [0], []]  # 2->0 (0.7), then 0->1 (0.9), then 1->3 (0.8)
    left, right, parent = to_binary(0, [[1, 2, 3], [], [], []])
    assert left.tolist() == [1, -1, -1, -1] and right.tolist() == [-1, 2, 3, -1]
    assert parent.tolist() == [-1, 0, 1, 2]


def _recursive_up(cell, node, left, right, feats, out):
    zeros = feats.new_zeros(1, cell.h_dim)
    states = []
    for child in (left[node], right[node]):
        states.append(_recursive_up(cell, child, left, right, feats, out) if child >= 0 else (zeros, zeros))
    (lc, lh), (rc, rh) = states
    x = feats[node:node + 1]
    i, o, f_l, f_r, u, r = (cell.ioffux(x) + cell.ioffuh_left(lh) + cell.ioffuh_right(rh)).chunk(6, 1)
    c = i.sigmoid() * u.tanh() + f_l.sigmoid() * lc + f_r.sigmoid() * rc
    h = r.sigmoid() * (o.sigmoid() * c.tanh()) + (1 - r.sigmoid()) * cell.px(x)
    out[node] = h[0]
    return c, h


def _recursive_down(cell, node, left, right, feats, out, c_par, h_par):
    x = feats[node:node + 1]
    i, o, f, u, r = (cell.iofux(x) + cell.iofuh(h_par)).chunk(5, 1)
    c = i.sigmoid() * u.tanh() + f.sigmoid() * c_par
    h = r.sigmoid() * (o.sigmoid() * c.tanh()) + (1 - r.sigmoid()) * cell.px(x)
    out[node] = h[0]
    for child in (left[node], right[node]):
        if child >= 0:
            _recursive_down(cell, child, left, right, feats, out, c, h)


def test_level_batched_tree_lstms_match_node_by_node_recursion():
    torch.manual_seed(0)
    scores = [torch.rand(6, 6), torch.rand(3, 3), torch.rand(0, 0)]
    forest = build_forest(scores, torch.device("cpu"))
    feats = torch.randn(9, 5)
    up, down = TreeLSTMUpCell(5, 4), TreeLSTMDownCell(5, 4)
    got_up, got_down = up(forest, feats, None), down(forest, feats, None)
    want_up, want_down = torch.zeros(9, 4), torch.zeros(9, 4)
    offset = 0
    for score in scores[:2]:
        root, children = grow_tree(score.numpy())
        left, right, _ = to_binary(root, children)
        sub = feats[offset:offset + score.shape[0]]
        part_up, part_down = torch.zeros(score.shape[0], 4), torch.zeros(score.shape[0], 4)
        _recursive_up(up, root, left, right, sub, part_up)
        _recursive_down(down, root, left, right, sub, part_down, torch.zeros(1, 4), torch.zeros(1, 4))
        want_up[offset:offset + score.shape[0]] = part_up
        want_down[offset:offset + score.shape[0]] = part_down
        offset += score.shape[0]
    assert torch.allclose(got_up, want_up, atol=1e-6)
    assert torch.allclose(got_down, want_down, atol=1e-6)


def test_vctree_pair_scores_match_the_explicit_pairwise_layers():
    torch.manual_seed(0)
    ctx = VCTreeLSTMContext(torch.randn(NUM_OBJ + 1, EMBED), FEAT, torch.rand(NUM_OBJ, NUM_OBJ, NUM_REL),
                            hidden_dim=HIDDEN, mode="sgcls")
    tree_inp, logits = torch.randn(5, 4 * 128), torch.randn(5, NUM_OBJ)
    bi_preds, scores = ctx.pair_scores([5], tree_inp, logits)
    feat = F.relu(ctx.score_pre(tree_inp))
    sub, obj = F.relu(ctx.score_sub(feat)), F.relu(ctx.score_obj(feat))
    prob = F.softmax(logits, -1)
    joint_dist = (prob[:, None, :, None] * prob[None, :, None, :]).reshape(5, 5, -1)  # [i, j, a*C+b]
    co_prior = ctx.bi_freq_prior(joint_dist).squeeze(-1)
    sub_m, obj_m = sub[None, :, :].expand(5, 5, -1), obj[:, None, :].expand(5, 5, -1)
    vis = ctx.vision_prior(torch.cat([sub_m * obj_m, sub_m, obj_m, co_prior[..., None]], -1)).squeeze(-1)
    assert torch.allclose(bi_preds[0], vis.sigmoid() * co_prior, atol=1e-5)
    assert torch.allclose(scores[0], bi_preds[0].sigmoid())
    weight = ctx.bi_freq_prior.weight.view(NUM_OBJ, NUM_OBJ)
    assert torch.allclose(weight, weight.t())


def test_overlap_info_of_two_boxes():
    proposal = BoxList(torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 5.0, 14.0, 14.0]]), (100, 100))
    info = get_overlap_info([proposal])
    # intersections with "+1" widths: self 100, pair 25; IoU self 1, pair 25 / 175
    scale = 1024.0 ** 2
    iou = 1 + 25 / 175
    expected = torch.tensor([2, 125 / scale, iou, 125 / scale / 2, iou / 2, 81 / scale])
    assert torch.allclose(info[0], expected.float()) and torch.allclose(info[1], expected.float())


def test_frequency_bias_lookups():
    pred_dist = torch.randn(4, 4, 3)
    bias = FrequencyBias(pred_dist)
    pairs = torch.tensor([[1, 2], [3, 0], [2, 2]])
    assert torch.equal(bias(pairs), pred_dist[pairs[:, 0], pairs[:, 1]])
    onehot = F.one_hot(pairs, 4).float().transpose(1, 2)  # [R, C, 2]
    assert torch.allclose(bias.index_with_probability(onehot), bias.index_with_labels(pairs))


def test_transformer_padding_does_not_leak_between_images():
    torch.manual_seed(0)
    encoder = TransformerEncoder(2, 2, 4, 4, 8, 16, dropout=0.1).eval()
    short, long = torch.randn(3, 8), torch.randn(6, 8)
    together = encoder(torch.cat([short, long]), [3, 6])
    assert torch.allclose(together[:3], encoder(short, [3]), atol=1e-5)
    assert torch.allclose(together[3:], encoder(long, [6]), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_single_box_image_with_placeholder_pair(name):
    predictor = build(name, "sgdet").eval()
    proposals, pairs, _, _, roi, _ = make_batch("sgdet", sizes=(1, 4))
    pairs[0] = torch.zeros(1, 2, dtype=torch.int64)  # the test-time placeholder pair [0, 0]
    union = torch.randn(1 + pairs[1].shape[0], FEAT)
    with torch.no_grad():
        obj_dists, rel_dists, _ = predictor(proposals, pairs, None, None, roi, union)
    assert obj_dists[0].shape == (1, NUM_OBJ) and rel_dists[0].shape == (1, NUM_REL)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_autocast(name):
    predictor = build(name, "sgcls").train()
    batch = make_batch("sgcls")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, *_ = total_loss(predictor, batch, "sgcls")
    loss.backward()
    assert torch.isfinite(loss)
