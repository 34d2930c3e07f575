"""EBM (training_frameworks/ebm, EBM.md section 9): the loss floor, the edge-list message passing against
the dense N x N formulation, the SGLD rules on hand examples (clip, renormalisation, mode masks, no
parameter gradients), energy structure (permutations, direction, per-image independence with BN in
eval, empty graphs), toy separation, separate gradient clipping, and (tiny runs) gradient routing,
unchanged inference, kill-resume and two ranks."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import training_frameworks  # noqa: F401  (registers EBM and its config group)
from maskrcnn_benchmark.engine.defaults import load_config, setup
from maskrcnn_benchmark.engine.framework import train_with_frameworks
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file
from relation_tool_args import REPO, config_file, free_port, small_overrides
from training_frameworks.ebm import (EdgeGNN, EnergyModel, GraphBatch, ImageGraphGNN, SamplerSettings, SGLDSampler,
                                     energy_losses, minmax_rows)
from training_frameworks.ebm.clipping import SeparateGradClip
from training_frameworks.ebm.graph import batch_indices, global_pairs, one_hot_states
from training_frameworks.ebm.layers import DEGREE_EPS

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
C_OBJ, C_REL, FEAT = 7, 5, 12


# ----------------------------------------------------------------------------------- helpers
def random_graph(nodes_per_image=(4, 3), edges_per_image=(6, 2), seed=0) -> GraphBatch:
    """Unique random directed pairs per image, random states and features."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for n, e in zip(nodes_per_image, edges_per_image):
        all_pairs = torch.tensor([(i, j) for i in range(n) for j in range(n) if i != j])
        pairs.append(all_pairs[torch.randperm(len(all_pairs), generator=g)[:e]])
    total = sum(nodes_per_image)
    xy = torch.rand(total, 2, generator=g) * 0.5
    wh = torch.rand(total, 2, generator=g) * 0.4 + 0.05
    boxes = torch.cat([wh, xy + wh / 2, xy, xy + wh, wh[:, :1] * wh[:, 1:]], dim=1)
    return GraphBatch(image_features=torch.randn(total, FEAT, generator=g), boxes=boxes,
                      node_states=minmax_rows(torch.randn(total, C_OBJ, generator=g)),
                      edge_states=minmax_rows(torch.randn(sum(edges_per_image), C_REL, generator=g)),
                      pairs=global_pairs(pairs, nodes_per_image), node_batch=batch_indices(nodes_per_image, "cpu"),
                      edge_batch=batch_indices(edges_per_image, "cpu"), num_images=len(nodes_per_image))


def tiny_model(seed=0) -> EnergyModel:
    torch.manual_seed(seed)
    return EnergyModel(FEAT, C_OBJ, C_REL, node_dim=16, edge_dim=8, pooling_dim=16, box_embed_dim=8)


def sampler(**kw) -> SGLDSampler:
    return SGLDSampler(SamplerSettings(**kw))


class LinearEnergy(nn.Module):
    """E_b = sum over image b's edge states of c . state (and nodes' d . state): a constant state gradient."""

    def __init__(self, c: torch.Tensor, d: torch.Tensor) -> None:
        super().__init__()
        self.c, self.d = nn.Parameter(c), nn.Parameter(d)

    def forward(self, graph: GraphBatch) -> torch.Tensor:
        out = torch.zeros(graph.num_images).index_add(0, graph.edge_batch, graph.edge_states @ self.c)
        return out.index_add(0, graph.node_batch, graph.node_states @ self.d)[:, None]


# ----------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("batch", [4, 2])
def test_loss_floor_and_its_minimiser(batch):
    floor = -1.0 / (2 * batch)  # T = 1: means in the CD part, a sum in the L2 part
    best = energy_losses(torch.full((batch, 1), -1 / (2 * batch)), torch.full((batch, 1), 1 / (2 * batch)))
    assert abs(float(sum(best.values())) - floor) < 1e-6
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        pos, neg = torch.randn(batch, 1, generator=g), torch.randn(batch, 1, generator=g)
        assert float(sum(energy_losses(pos, neg).values())) >= floor - 1e-6
    weighted = energy_losses(torch.ones(batch, 1), torch.zeros(batch, 1), temp=2.0, cd_weight=0.5, l2_weight=3.0)
    assert weighted["loss_ebm_cd"].item() == pytest.approx(1.0) and weighted["loss_ebm_l2"].item() == 3.0 * batch


# ----------------------------------------------------------------------------------- message passing
def dense_egnn(layer: EdgeGNN, nodes, edges, pairs):
    """The release's dense formulation: N x N adjacency, N x N x d edge tensor, all cells updated."""
    n = nodes.shape[0]
    adj = torch.zeros(n, n)
    adj[pairs[:, 0], pairs[:, 1]] = 1
    dense = torch.zeros(n, n, edges.shape[1])
    dense[pairs[:, 0], pairs[:, 1]] = edges
    for _ in range(layer.iters):
        node_msg = adj @ nodes / (adj.sum(1, keepdim=True) + DEGREE_EPS)
        edge_msg = (adj[:, :, None] * dense).sum(0)  # node j: sum over i of e_{i->j}
        cat = torch.cat([nodes[:, None].expand(n, n, -1), nodes[None].expand(n, n, -1)], dim=2) * adj[:, :, None]
        pair_msg = layer.node2edge(cat.reshape(n * n, -1))
        update = layer.alpha * layer.node2node(node_msg) + (1 - layer.alpha) * layer.edge2node(edge_msg)
        nodes = layer.node_gru(update, nodes)
        dense = layer.edge_gru(pair_msg, dense.reshape(n * n, -1)).reshape(n, n, -1)
    return nodes, dense[pairs[:, 0], pairs[:, 1]]


def test_edge_list_egnn_equals_the_dense_formulation():
    torch.manual_seed(0)
    layer = EdgeGNN(6, 5, iters=3)
    graph = random_graph((5, 4), (9, 5), seed=1)  # one node of image 0 likely without out-edges
    nodes, edges = torch.randn(9, 6), torch.randn(14, 5)
    got = layer(nodes, edges, graph.pairs)
    want = dense_egnn(layer, nodes, edges, graph.pairs)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5)
    gnn = ImageGraphGNN(6, iters=3)
    adj = torch.zeros(9, 9)
    adj[graph.pairs[:, 0], graph.pairs[:, 1]] = 1
    h = nodes
    for _ in range(3):
        h = gnn.gru(gnn.kernel(adj @ h / (adj.sum(1, keepdim=True) + DEGREE_EPS)), h)
    assert torch.allclose(gnn(nodes, graph.pairs), h, atol=1e-5)


# ----------------------------------------------------------------------------------- energy structure
def test_energy_shape_permutations_direction_and_independence():
    model = tiny_model().eval()
    graph = random_graph()
    energy = model(graph)
    assert energy.shape == (2, 1)
    perm = torch.tensor([2, 0, 3, 1, 5, 6, 4])  # within images
    inverse = torch.argsort(perm)
    edge_perm = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])
    permuted = GraphBatch(graph.image_features[perm], graph.boxes[perm], graph.node_states[perm],
                          graph.edge_states[edge_perm], inverse[graph.pairs[edge_perm]], graph.node_batch,
                          graph.edge_batch[edge_perm], 2)
    assert torch.allclose(model(permuted), energy, atol=1e-5)
    swapped = GraphBatch(graph.image_features, graph.boxes, graph.node_states, graph.edge_states,
                         graph.pairs.flip(1), graph.node_batch, graph.edge_batch, 2)
    assert not torch.allclose(model(swapped), energy, atol=1e-4)
    nodes, edges = graph.node_batch == 0, graph.edge_batch == 0
    first = GraphBatch(graph.image_features[nodes], graph.boxes[nodes], graph.node_states[nodes],
                       graph.edge_states[edges], graph.pairs[edges], graph.node_batch[nodes],
                       graph.edge_batch[edges], 1)
    assert torch.allclose(model(first), energy[:1], atol=1e-5)  # image 0 alone: same energy (BN in eval)
    empty = GraphBatch(graph.image_features, graph.boxes, graph.node_states, graph.edge_states[:0],
                       graph.pairs[:0], graph.node_batch, graph.edge_batch[:0], 3)  # image 2 has no nodes
    out = model.train()(empty)
    assert out.shape == (3, 1) and torch.isfinite(out).all()


def test_encoding_of_states():
    torch.manual_seed(0)
    states = one_hot_states(torch.tensor([2, 0, 1]), 4, noise=1e-4)
    assert (states - torch.eye(4)[[2, 0, 1]]).abs().max() < 1e-3
    rows = minmax_rows(torch.randn(6, 5) * 30)
    assert torch.allclose(rows.min(1).values, torch.zeros(6)) and torch.allclose(rows.max(1).values, torch.ones(6))


# ----------------------------------------------------------------------------------- sampler
def test_release_rule_on_a_hand_example():
    graph = random_graph((2,), (1,))
    graph = graph.with_states(graph.node_states, torch.tensor([[0.0, 0.5, 1.0, 0.2, 0.9]]))
    c = torch.tensor([0.005, -1.0, 0.0, 1.0, -0.004])  # clamped to +-0.01 where large
    energy = LinearEnergy(c, torch.zeros(C_OBJ))
    out = sampler(lr=1.0, noise=0.0, iters=1, grad_clip=0.01).sample(energy, graph, sample_nodes=False)
    shifted = torch.tensor([[0.0 - 0.005, 0.5 + 0.01, 1.0, 0.2 - 0.01, 0.9 + 0.004]])
    expected = (shifted - shifted.min()) / (shifted - shifted.min()).max()
    assert torch.allclose(out.edge_states, expected, atol=1e-6)
    assert out.node_states is graph.node_states  # PredCls: node states not sampled
    paper = sampler(rule="paper", lr=0.2, noise=0.0, iters=1).sample(energy, graph, sample_nodes=True)
    assert torch.allclose(paper.edge_states, graph.edge_states - 0.1 * c, atol=1e-6)
    assert torch.equal(paper.node_states, graph.node_states)  # their gradient d is 0


def test_step_bound_row_range_masks_and_no_parameter_gradients():
    graph = random_graph()
    energy = LinearEnergy(torch.randn(C_REL) * 100, torch.randn(C_OBJ) * 100)  # every gradient clamped
    s = sampler(lr=1.0, noise=0.001, iters=1, grad_clip=0.01)
    s.normalise = lambda x: x  # look before the renormalisation
    torch.manual_seed(0)
    out = s.sample(energy, graph, sample_nodes=True)
    for before, after in ((graph.edge_states, out.edge_states), (graph.node_states, out.node_states)):
        delta = (after - before).abs()
        assert delta.max() <= 0.01 + 5 * 0.001 and delta.max() > 0.005
    model = tiny_model()
    full = sampler(lr=1.0, noise=0.001, iters=3, grad_clip=0.01)
    sgcls = full.sample(model, graph, sample_nodes=True)
    for states in (sgcls.edge_states, sgcls.node_states):
        assert torch.allclose(states.min(1).values, torch.zeros(len(states)), atol=1e-6)
        assert torch.allclose(states.max(1).values, torch.ones(len(states)), atol=1e-6)
    assert not torch.equal(sgcls.node_states, graph.node_states)
    predcls = full.sample(model, graph, sample_nodes=False)
    assert torch.equal(predcls.node_states, graph.node_states)
    assert all(p.grad is None for p in list(model.parameters()) + list(energy.parameters()))


def test_the_sample_stays_differentiable_in_the_initial_states():
    logits = torch.randn(8, C_REL, requires_grad=True)
    graph = random_graph()
    graph = graph.with_states(graph.node_states, minmax_rows(logits))
    out = sampler(lr=1.0, noise=0.001, iters=3, grad_clip=0.01).sample(tiny_model(), graph, sample_nodes=False)
    out.edge_states.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sgld_lowers_the_energy():
    model = tiny_model().eval()
    graph = random_graph()
    s = sampler(lr=0.05, noise=0.0, iters=1, grad_clip=10.0)
    s.normalise = lambda x: x
    energies = [model(graph).sum().item()]
    for _ in range(5):
        graph = s.sample(model, graph, sample_nodes=True)
        energies.append(model(graph).sum().item())
    assert all(b <= a + 1e-6 for a, b in zip(energies, energies[1:])) and energies[-1] < energies[0]
    start = random_graph((4, 3, 5, 4), (6, 2, 8, 5), seed=3)
    torch.manual_seed(0)
    after = sampler(lr=1.0, noise=0.001, iters=20, grad_clip=0.01).sample(model, start, sample_nodes=True)
    assert (model(after) - model(start)).mean() < 0


# ----------------------------------------------------------------------------------- toy separation
def test_toy_separation():
    """The energy model alone, SGD on GT one-hots (low) vs random min-max states (high)."""
    torch.manual_seed(0)
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def toy(seed):
        g = torch.Generator().manual_seed(seed)
        nodes = [int(n) for n in torch.randint(3, 7, (4,), generator=g)]
        graph = random_graph(tuple(nodes), tuple(n for n in nodes), seed=seed)
        labels = torch.randint(0, C_OBJ, (sum(nodes),), generator=g)
        predicates = torch.randint(1, C_REL, (sum(nodes),), generator=g)
        pos = graph.with_states(one_hot_states(labels, C_OBJ, 1e-4), one_hot_states(predicates, C_REL, 1e-4))
        return pos, graph  # the random graph's states are min-max rows

    data = [toy(seed) for seed in range(8)]
    for step in range(150):
        pos, neg = data[step % len(data)]
        loss = sum(energy_losses(model(pos), model(neg)).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        pos = torch.cat([model(p) for p, _ in data])
        neg = torch.cat([model(n) for _, n in data])
    assert (pos < neg).float().mean() >= 0.95
    assert abs(pos.mean() + 0.125) < 0.03 and abs(neg.mean() - 0.125) < 0.03  # -/+ T / (2B), B = 4


# ----------------------------------------------------------------------------------- clipping
def test_energy_gradients_are_clipped_on_their_own():
    energy_params = [nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))]
    other = nn.Parameter(torch.zeros(2))
    energy_params[0].grad, energy_params[1].grad = torch.tensor([30.0, 0.0, 40.0]), None
    other.grad = torch.tensor([3.0, 4.0])
    hook = SeparateGradClip(lambda: energy_params, max_norm=5.0)
    hook.after_backward(1, nn.Module())
    assert all(p.grad is None for p in energy_params)  # the trainer's clipping sees the others alone
    torch.nn.utils.clip_grad_norm_([other], 1.0)
    hook.before_step(1, nn.Module())
    assert torch.allclose(energy_params[0].grad, torch.tensor([3.0, 0.0, 4.0]), atol=1e-4)
    assert energy_params[1].grad is None
    assert torch.allclose(other.grad, torch.tensor([0.6, 0.8]), atol=1e-4)


# ----------------------------------------------------------------------------------- the framework in runs
SMALL = {"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['EBM']", "EBM.NODE_DIM": 16, "EBM.EDGE_DIM": 16,
         "EBM.POOLING_DIM": 16, "EBM.SAMPLER.ITERS": 2, "SEED": 0}


def _opts(data_dir, out, max_iter=2, **extra):
    return small_overrides(data_dir, str(out), max_iter, **{**SMALL, **extra})


def test_gradient_routing_and_unchanged_inference(synthetic_data_dir, tmp_path):
    from maskrcnn_benchmark.data import make_data_loader
    from maskrcnn_benchmark.engine.framework import attach_frameworks, build_frameworks
    from maskrcnn_benchmark.engine.relation_train import freeze_detector
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    cfg = load_config(config_file("predcls"), _opts(synthetic_data_dir, tmp_path))
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    freeze_detector(model)
    images, targets, _ = next(iter(make_data_loader(cfg, "train", False)))
    test_images, test_targets, _ = next(iter(make_data_loader(cfg, "test", False)[0]))
    model.eval()
    with torch.no_grad():
        plain = model(test_images, test_targets)
    attach_frameworks(model, build_frameworks(cfg))
    with torch.no_grad():
        with_ebm = model(test_images, test_targets)
    for a, b in zip(plain, with_ebm):
        assert a.fields() == b.fields()
        for field in a.fields():
            assert torch.equal(a.get_field(field), b.get_field(field)), field

    model.train()
    losses = model(images, targets)
    assert {"loss_ebm_cd", "loss_ebm_l2"} <= set(losses)
    head = model.roi_heads.relation
    predictor = [p for p in head.predictor.parameters() if p.requires_grad]
    ebm = losses["loss_ebm_cd"] + losses["loss_ebm_l2"]
    extra = torch.autograd.grad(ebm, predictor, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in extra), "no energy gradient reaches the predictor"
    box = [p for p in head.box_feature_extractor.parameters()]
    into_box = torch.autograd.grad(ebm, box, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in into_box)  # the release's no-op detach
    sum(losses.values()).backward()
    energy = head.framework_modules["EBM"]
    assert all(p.grad is not None for p in energy.parameters())
    frozen = [p for n, p in model.named_parameters() if n.startswith(("backbone", "rpn", "roi_heads.box"))]
    assert frozen and all(p.grad is None for p in frozen)


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_object_states_are_sampled_in_sgcls_and_sgdet(synthetic_data_dir, tmp_path, mode, monkeypatch):
    from training_frameworks.ebm.sampler import SGLDSampler as Sampler

    seen = []
    original = Sampler.sample

    def spy(self, energy_model, graph, sample_nodes):
        out = original(self, energy_model, graph, sample_nodes)
        seen.append((sample_nodes, torch.equal(out.node_states, graph.node_states)))
        return out

    monkeypatch.setattr(Sampler, "sample", spy)
    extra = {"MODEL.ROI_HEADS.DETECTIONS_PER_IMG": 6} if mode == "sgdet" else {"DTYPE": "bfloat16"}  # AMP too
    ctx = setup(config_file(mode), _opts(synthetic_data_dir, tmp_path, 1, **extra))
    model = train_with_frameworks(ctx.cfg, ctx)
    assert seen and all(nodes and not same for nodes, same in seen)
    assert any(k.startswith("roi_heads.relation.framework_modules.EBM") for k in model.state_dict())


class Killer:
    """A hook that interrupts training after iteration ``at``."""

    def __init__(self, at):
        self.at = at

    def after_backward(self, iteration, model):
        pass

    def before_step(self, iteration, model):
        pass

    def after_step(self, iteration, model, outcome):
        if iteration == self.at:
            raise KeyboardInterrupt


def test_killed_run_resumes_bit_identically(synthetic_data_dir, tmp_path):
    def run(out, hooks=()):
        ctx = setup(config_file("predcls"), _opts(synthetic_data_dir, out, 4, **{"SOLVER.CHECKPOINT_PERIOD": 2}))
        return train_with_frameworks(ctx.cfg, ctx, hooks=hooks)

    reference = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", hooks=[Killer(3)])
    assert open(tmp_path / "b" / "last_checkpoint").read().strip() == "model_0000002.pth"
    run(tmp_path / "b")
    resumed = load_checkpoint_file(str(tmp_path / "b" / "model_final.pth"))
    expected = reference.state_dict()
    assert resumed["model"].keys() == expected.keys()
    assert any(k.startswith("roi_heads.relation.framework_modules.EBM") for k in expected)
    for key, value in expected.items():
        assert torch.equal(resumed["model"][key], value), key
    log_a = open(tmp_path / "a" / "ebm_energies.json").read()
    assert log_a == open(tmp_path / "b" / "ebm_energies.json").read() and log_a.count("iteration") == 4


def test_two_ranks_train_identical_parameters(synthetic_data_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "framework_dist_worker.py"),
           config_file("predcls"), *_opts(synthetic_data_dir, out, 1)]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pth", weights_only=True) for r in (0, 1))
    energy_keys = [k for k in rank0 if k.startswith("roi_heads.relation.framework_modules.EBM")]
    assert energy_keys and rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
