"""The hierarchical predicate loss (HIERARCHY.md D2-D3): both score forms against hand computations, where
a coarse label's gradient goes, the D3 label, written scores and ranking, checkpoint compatibility of the
marginal form, and (tiny runs) resume after a kill, two ranks, stacking under HML's stages, and the
refine-threshold tool."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import hml_patch  # noqa: F401  (the HML config group and framework)
import training_frameworks  # noqa: F401  (registers HierarchicalLoss and its HIER group)
from hml_patch.stages import STAGE_REPORT, train_hml
from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.engine.defaults import load_config, setup
from maskrcnn_benchmark.engine.framework import attach_frameworks, build_frameworks, train_with_frameworks
from maskrcnn_benchmark.engine.relation_inference import relation_inference
from maskrcnn_benchmark.engine.trainer import TrainHook
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.roi_heads.relation_head.inference import RelationPostProcessor
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file
from relation_tool_args import REPO, config_file, free_port, small_overrides
from training_frameworks.hierarchical_loss import (FactorisedHead, HierarchicalScores, TreeLayout, d3_labels,
                                                   d3_scores, hgr_layer_weights, hierarchical_loss,
                                                   layer_class_balanced_weights, marginal_log_probs)

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC_TREE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")

# Hand tree: on {sitting on, standing on}, has {wearing, holding}, near {behind} (a lone child: no P2).
NAMES = ["__background__", "on", "sitting on", "standing on", "has", "wearing", "holding", "near", "behind"]
BG, ON, SITTING, STANDING, HAS, WEARING, HOLDING, NEAR, BEHIND = range(9)
PARENTS = {"sitting on": "on", "standing on": "on", "wearing": "has", "holding": "has", "behind": "near"}
NODE_SETS = {BG: [BG], ON: [ON, SITTING, STANDING], HAS: [HAS, WEARING, HOLDING], NEAR: [NEAR, BEHIND]}
CHILD_SETS = {SITTING: [SITTING, STANDING], STANDING: [SITTING, STANDING], WEARING: [WEARING, HOLDING],
              HOLDING: [WEARING, HOLDING]}
PARENT = {BG: BG, ON: ON, SITTING: ON, STANDING: ON, HAS: HAS, WEARING: HAS, HOLDING: HAS, NEAR: NEAR, BEHIND: NEAR}


@pytest.fixture(scope="module")
def layout():
    return TreeLayout.from_hierarchy(PredicateHierarchy.from_links(NAMES, PARENTS))


def _lse(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _hand_loss(p1_logits, p2_logits, labels, w, class_weights=None):
    """D2 per sample by hand: p1_logits(row) -> {node: logit}, p2_logits(row) -> {child: logit}."""
    total = norm = 0.0
    for i, g in enumerate(labels):
        z1, z2 = p1_logits(i), p2_logits(i)
        loss = -w[0] * (z1[PARENT[g]] - _lse(list(z1.values())))
        if g in CHILD_SETS:
            loss += -w[1] * (z2[g] - _lse([z2[c] for c in CHILD_SETS[g]]))
        weight = 1.0 if class_weights is None else float(class_weights[g])
        total, norm = total + weight * loss, norm + weight
    return total / norm


LABELS = [BG, ON, SITTING, HOLDING, BEHIND, NEAR]


def test_marginal_loss_equals_a_hand_computation(layout):
    torch.manual_seed(0)
    logits = torch.randn(len(LABELS), len(NAMES), dtype=torch.float64)
    rows = logits.tolist()

    def p1_logits(i):  # a node's "logit" is the logsumexp of its set: the marginal
        return {node: _lse([rows[i][k] for k in members]) for node, members in NODE_SETS.items()}

    def p2_logits(i):
        return {c: rows[i][c] for c in CHILD_SETS}

    log_p1, log_p2 = marginal_log_probs(logits, layout)
    labels = torch.tensor(LABELS)
    weights = (0.7, 0.3)
    assert math.isclose(hierarchical_loss(log_p1, log_p2, labels, layout, weights).item(),
                        _hand_loss(p1_logits, p2_logits, LABELS, weights), rel_tol=1e-12)
    class_weights = torch.tensor([0.5, 2.0, 1.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.25])
    assert math.isclose(hierarchical_loss(log_p1, log_p2, labels, layout, weights, class_weights).item(),
                        _hand_loss(p1_logits, p2_logits, LABELS, weights, class_weights), rel_tol=1e-6)


def test_factorised_loss_equals_a_hand_computation(layout):
    torch.manual_seed(1)
    head = FactorisedHead(layout).double()
    with torch.no_grad():
        for param in head.parameters():
            param.normal_()
    logits = torch.randn(len(LABELS), len(NAMES), dtype=torch.float64)
    w1, b1 = head.layer1.weight.tolist(), head.layer1.bias.tolist()
    w2, b2 = head.children_logits.weight.tolist(), head.children_logits.bias.tolist()
    rows = logits.tolist()
    nodes = [BG, ON, HAS, NEAR]  # layer-1 outputs in this order
    children = [SITTING, STANDING, WEARING, HOLDING]  # P2 outputs, by group then id

    def affine(weight, bias, row):
        return [sum(a * x for a, x in zip(line, row)) + b for line, b in zip(weight, bias)]

    def p1_logits(i):
        return dict(zip(nodes, affine(w1, b1, rows[i])))

    def p2_logits(i):
        return dict(zip(children, affine(w2, b2, rows[i])))

    log_p1, log_p2 = head(logits)
    assert math.isclose(hierarchical_loss(log_p1, log_p2, torch.tensor(LABELS), layout, (0.6, 0.4)).item(),
                        _hand_loss(p1_logits, p2_logits, LABELS, (0.6, 0.4)), rel_tol=1e-12)
    # The selection initialisation starts from the flat scores: P1 reads each node's own logit.
    fresh = FactorisedHead(layout).double()
    assert torch.equal(fresh(logits)[0], torch.log_softmax(logits[:, [BG, ON, HAS, NEAR]], dim=-1))


def test_layer_weights_and_in_layer_class_balance(layout):
    w1, w2 = hgr_layer_weights(layout)  # N1 = 4 nodes (with background), N2 = 5 fine predicates
    assert math.isclose(w1, (1 / 4) / (1 / 4 + 1 / 5)) and math.isclose(w1 + w2, 1.0)
    counts = torch.tensor([0.0, 100, 10, 5, 50, 20, 1, 3, 2])
    nodes, children = layer_class_balanced_weights(counts, layout, 0.9)
    raw = torch.tensor([(1 - 0.9) / (1 - 0.9 ** n) for n in (115, 71, 5)], dtype=torch.float64)
    assert torch.allclose(nodes, torch.cat([torch.ones(1), (raw / raw.mean()).float()]))
    raw = torch.tensor([(1 - 0.9) / (1 - 0.9 ** n) for n in (10, 5, 20, 1)], dtype=torch.float64)
    assert torch.allclose(children, (raw / raw.mean()).float())


def _grad(layout, label, form):
    torch.manual_seed(2)
    logits = torch.randn(1, len(NAMES), dtype=torch.float64, requires_grad=True)
    head = FactorisedHead(layout).double() if form == "factorised" else None
    log_p1, log_p2 = head(logits) if head is not None else marginal_log_probs(logits, layout)
    hierarchical_loss(log_p1, log_p2, torch.tensor([label]), layout, (0.8, 0.2)).backward()
    return logits.detach()[0], logits.grad[0], head


def test_a_coarse_label_leaves_its_childrens_relative_scores_alone(layout):
    """Marginal: the gradient on {on} U ch(on) is proportional to their softmax within that set (one common
    factor), so it moves the set's mass as a whole and never pushes one child against another."""
    logits, grad, _ = _grad(layout, ON, "marginal")
    members = NODE_SETS[ON]
    within = torch.softmax(logits[members], dim=0)
    ratio = grad[members] / within
    assert torch.allclose(ratio, ratio[0].expand(3), rtol=1e-12) and ratio[0] < 0
    outside = [k for k in range(len(NAMES)) if k not in members]
    assert torch.allclose(grad[outside], 0.8 * torch.softmax(logits, dim=0)[outside], rtol=1e-12)  # w1 = 0.8
    # A fine label adds the P2 term: sitting on is pulled up against its sibling, beyond the set's common factor.
    logits, grad, _ = _grad(layout, SITTING, "marginal")
    ratio = grad[members] / torch.softmax(logits[members], dim=0)
    assert ratio[1] < ratio[0] < ratio[2]


def _nonzero(param):
    """Entries of ``param``'s gradient that are not 0 (none when no gradient reached it)."""
    return 0 if param.grad is None else int(torch.count_nonzero(param.grad))


def test_factorised_coarse_label_gives_no_child_gradient(layout):
    _, _, head = _grad(layout, ON, "factorised")
    assert _nonzero(head.children_logits.weight) == _nonzero(head.children_logits.bias) == 0
    assert _nonzero(head.layer1.weight) > 0
    for label in (BG, BEHIND):  # background and a lone child: the layer-1 term only
        _, _, head = _grad(layout, label, "factorised")
        assert _nonzero(head.children_logits.bias) == 0 and _nonzero(head.layer1.bias) == 4
    _, _, head = _grad(layout, SITTING, "factorised")
    assert _nonzero(head.children_logits.bias) == 2  # sitting on and standing on only
    assert _nonzero(head.layer1.bias) == 4


# ------------------------------------------------------------------------------------------ D3 inference
def _d3_inputs():
    """P1 over (bg, on, has, near) and P2 over (sitting, standing | wearing, holding) for four pairs."""
    p1 = torch.tensor([[0.5, 0.3, 0.15, 0.05],   # on wins; P2 0.7 / 0.3
                       [0.1, 0.2, 0.6, 0.1],     # has wins; P2 tie 0.5 / 0.5
                       [0.2, 0.1, 0.1, 0.6],     # near wins; lone child, never refined
                       [0.9, 0.04, 0.05, 0.01]])  # background is ignored: has wins
    p2 = torch.tensor([[0.7, 0.3, 0.5, 0.5],
                       [0.2, 0.8, 0.5, 0.5],
                       [0.5, 0.5, 0.1, 0.9],
                       [0.5, 0.5, 0.95, 0.05]])
    return p1.log(), p2.log()


@pytest.mark.parametrize("tau, expected", [
    (0.0, [SITTING, WEARING, NEAR, WEARING]),
    (0.5, [SITTING, WEARING, NEAR, WEARING]),
    (0.7, [SITTING, HAS, NEAR, WEARING]),
    (0.96, [ON, HAS, NEAR, HAS]),
    (1.0, [ON, HAS, NEAR, HAS]),
])
def test_d3_labels_and_written_scores(layout, tau, expected):
    log_p1, log_p2 = _d3_inputs()
    labels, confidence = d3_labels(log_p1, log_p2, layout, tau)
    assert labels.tolist() == expected
    assert torch.allclose(confidence, torch.tensor([0.3, 0.6, 0.6, 0.05]))
    scores = d3_scores(log_p1, log_p2, layout, tau)
    best, column = scores[:, 1:].max(dim=1)
    assert (column + 1).tolist() == expected and torch.equal(best, confidence)
    assert (scores[:, 1:] == best[:, None]).sum(dim=1).tolist() == [1, 1, 1, 1]  # a strict maximum
    p1 = log_p1.exp()
    # Other columns keep their ng score (capped below P1(c^)): a refined row still shows its parent.
    assert math.isclose(scores[0, HOLDING].item(), p1[0, 2].item() * 0.5, rel_tol=1e-6)
    assert scores[2, BEHIND] == 0


def test_d3_ranks_by_layer1_confidence(layout):
    """Row B (coarse ``has``, P1 0.5) beats row A (refined ``sitting on``, P1 0.6 x P2 0.6 = 0.36) when ranked
    by P1 x P2; D3 ranks by P1, so A comes first, and the post-processor writes that order."""
    eps = 1e-6
    flat = {"A": {BG: 0.1, ON: 0.1, SITTING: 0.3, STANDING: 0.2, HAS: 0.2, WEARING: 0.05, HOLDING: 0.05},
            "B": {BG: 0.2, ON: 0.2, SITTING: 0.05, STANDING: 0.05, HAS: 0.5}}
    logits = torch.tensor([[math.log(flat[row].get(k, 0.0) + eps) for k in range(len(NAMES))] for row in "BA"])
    processor = RelationPostProcessor(use_gt_box=True, later_nms_pred_thres=0.3)
    processor.relation_scores = HierarchicalScores(layout, tau=0.55)
    proposal = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 20.0]]), (30, 30), "xyxy")
    obj_logits = torch.tensor([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0]])
    pairs = torch.tensor([[0, 1], [1, 0]])  # row B, row A
    result, = processor([logits], [obj_logits], [pairs], [proposal])
    assert result.get_field("rel_pair_idxs").tolist() == [[1, 0], [0, 1]]
    assert result.get_field("pred_rel_labels").tolist() == [SITTING, HAS]
    assert torch.allclose(result.get_field("pred_rel_scores")[:, 1:].max(dim=1).values,
                          torch.tensor([0.6, 0.5]), atol=1e-4)


# ----------------------------------------------------------------------------------- models and runs
def _overrides(data_dir, out, max_iter=3, form="marginal", **extra):
    settings = {"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['HierarchicalLoss']", "HIER.TREE": SYNTHETIC_TREE,
                "HIER.FORM": form, "SEED": 0}
    settings.update(extra)
    return small_overrides(data_dir, str(out), max_iter, **settings)


def test_the_marginal_form_loads_into_a_plain_predictor(synthetic_data_dir, tmp_path):
    cfg = load_config(config_file("predcls"), _overrides(synthetic_data_dir, tmp_path))
    model = build_detection_model(cfg)
    attach_frameworks(model, build_frameworks(cfg))
    plain = build_detection_model(load_config(config_file("predcls"), small_overrides(synthetic_data_dir,
                                                                                     str(tmp_path), 3)))
    assert model.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(model.state_dict(), strict=True)
    assert isinstance(model.roi_heads.relation.post_processor.relation_scores, HierarchicalScores)

    factorised = load_config(config_file("predcls"), _overrides(synthetic_data_dir, tmp_path, form="factorised"))
    model = build_detection_model(factorised)
    attach_frameworks(model, build_frameworks(factorised))
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("roi_heads.relation.framework_modules.HierarchicalLoss.") for k in extra)


class Killer(TrainHook):
    """Raises KeyboardInterrupt in the after_step of iteration ``at``."""

    def __init__(self, at):
        self.at = at

    def after_step(self, iteration, model, outcome):
        if iteration == self.at:
            raise KeyboardInterrupt


def test_factorised_run_killed_resumes_bit_identically(synthetic_data_dir, tmp_path):
    def run(out, hooks=()):
        ctx = setup(config_file("predcls"), _overrides(synthetic_data_dir, out, 4, form="factorised",
                                                       **{"SOLVER.CHECKPOINT_PERIOD": 2}))
        return train_with_frameworks(ctx.cfg, ctx, hooks=hooks)

    reference = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", hooks=[Killer(3)])
    assert open(tmp_path / "b" / "last_checkpoint").read().strip() == "model_0000002.pth"
    run(tmp_path / "b")
    resumed = load_checkpoint_file(str(tmp_path / "b" / "model_final.pth"))["model"]
    expected = reference.state_dict()
    assert resumed.keys() == expected.keys()
    assert any(k.startswith("roi_heads.relation.framework_modules.HierarchicalLoss") for k in resumed)
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key


def test_two_ranks_train_identical_parameters(synthetic_data_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "framework_dist_worker.py"),
           config_file("predcls"), *_overrides(synthetic_data_dir, out, 3, form="factorised")]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pth", weights_only=True) for r in (0, 1))
    assert any(k.startswith("roi_heads.relation.framework_modules.HierarchicalLoss") for k in rank0)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    head = FactorisedHead(TreeLayout.from_hierarchy(PredicateHierarchy.from_json(SYNTHETIC_TREE)))
    trained = rank0["roi_heads.relation.framework_modules.HierarchicalLoss.layer1.weight"]
    assert not torch.equal(trained, head.layer1.weight.detach()), "the head did not train"


def test_stacks_with_hml_stages(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "hml")
    opts = _overrides(synthetic_data_dir, out, 2, **{
        "MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['HML', 'HierarchicalLoss']", "HML.TREE": SYNTHETIC_TREE,
        "HML.STAGE_MAX_ITER": "[2, 2]"})
    ctx = setup(config_file("predcls"), opts)
    result = train_hml(ctx.cfg, ctx)
    assert [r["stage"] for r in result.reports] == [1, 2]
    assert all(os.path.isfile(os.path.join(out, f"stage{k}", STAGE_REPORT)) for k in (1, 2))
    head = result.model.roi_heads.relation
    assert isinstance(head.post_processor.relation_scores, HierarchicalScores)
    assert head.loss_evaluator.rel_class_weights is not None  # HML's stage weights, read by the D2 mean
    assert len(head.loss_hooks) == 2
    final = result.reports[-1]["final_losses"]
    assert {"loss_rel", "loss_cr", "loss_mr"} <= set(final) and all(math.isfinite(v) for v in final.values())


def test_threshold_tool_matches_the_evaluation_at_each_tau(synthetic_data_dir, tmp_path):
    """tools/tune_refine_threshold.py re-scores recorded logits; each tau's numbers equal an evaluation of the
    model with that tau, the best row is the one with the highest target metric, and --test then writes the
    test split's metrics of the model at that tau."""
    opts = _overrides(synthetic_data_dir, tmp_path, 3, form="factorised",
                      **{"TEST.RELATION.PREDICATE_TREE": SYNTHETIC_TREE, "HIER.TUNE_GRID": "(0.0, 1.0)",
                         "HIER.TUNE_METRIC": "HR@50"})
    ctx = setup(config_file("predcls"), opts)
    model = train_with_frameworks(ctx.cfg, ctx)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "tune_refine_threshold.py"), "--config-file",
                           config_file("predcls"), "--test", *opts], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.load(open(tmp_path / "inference" / "synthetic_vg_val" / "refine_threshold.json"))
    assert [row["tau"] for row in report["grid"]] == [0.0, 1.0]
    assert report["best"] == max(report["grid"], key=lambda row: row["HR@50"])
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"best_tau"')]
    assert printed[-1]["best_tau"] == report["best_tau"]
    test_name = ctx.cfg.DATASETS.TEST[0]
    tested = json.load(open(tmp_path / "inference" / test_name / "metrics.json"))["metrics"]
    scorer = model.roi_heads.relation.post_processor.relation_scores
    scorer.tau = report["best_tau"]
    expected = relation_inference(ctx.cfg, model, make_data_loader(ctx.cfg, "test", False)[0], test_name,
                                  ctx.device)["metrics"]
    assert {key: tested[key] for key in ("R@K", "mR@K", "HR@K")} == {key: expected[key] for key in ("R@K", "mR@K", "HR@K")}
    loader = make_data_loader(ctx.cfg, "val", False)[0]
    for row in report["grid"]:
        scorer.tau = row["tau"]
        metrics = relation_inference(ctx.cfg, model, loader, "synthetic_vg_val", ctx.device)["metrics"]
        assert {key: row[key.replace("@K", "@50")] for key in ("R@K", "mR@K", "HR@K")} == \
            {key: metrics[key]["50"] for key in ("R@K", "mR@K", "HR@K")}


def test_run_reports_of_the_hierarchical_loss_and_the_reweighting_it_stacks_on(synthetic_data_dir, tmp_path):
    """The runner writes each framework's report after the last iteration: the weights the loss used,
    the form and layer weights, and the last iteration's loss terms (what the trainer logged)."""
    logged = []

    class LastLosses(TrainHook):
        def after_step(self, iteration, model, outcome):
            logged.append(dict(outcome.losses))

    opts = _overrides(synthetic_data_dir, tmp_path, 2, **{
        "MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['ClassBalancedCE', 'HierarchicalLoss']"})
    ctx = setup(config_file("predcls"), opts)
    model = train_with_frameworks(ctx.cfg, ctx, hooks=[LastLosses()])
    weights = json.load(open(tmp_path / "reweighting_report.json"))
    hier = json.load(open(tmp_path / "hierarchical_loss_report.json"))
    assert weights["framework"] == "ClassBalancedCE" and hier["framework"] == "HierarchicalLoss"
    assert weights["class_weights"] == model.roi_heads.relation.loss_evaluator.rel_class_weights.tolist()
    assert hier["form"] == "marginal" and hier["class_weights_from_another_framework"] is True
    assert len(hier["layer_weights"]) == 2 and hier["refine_threshold"] == 0.5
    assert weights["final_losses"] == hier["final_losses"] == logged[-1] and len(logged) == 2
