"""LS-KD (training_frameworks/lskd): the loss against a hand computation, plain CE where LS-KD is off,
the snapshot teacher and the auxiliary head, the multi-hot targets, kill-resume and two ranks."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hml_patch  # noqa: F401  (registers HML and its config group)
import training_frameworks  # noqa: F401  (registers LSKD and its config group)
from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.data.datasets.visual_genome import all_predicates_map
from maskrcnn_benchmark.engine.defaults import setup
from maskrcnn_benchmark.engine.framework import build_frameworks, train_with_frameworks
from maskrcnn_benchmark.engine.trainer import TrainHook, move_to_device
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file
from relation_tool_args import REPO, config_file, free_port, small_overrides
from training_frameworks.lskd.framework import REPORT_FILE, LSKDFramework
from training_frameworks.lskd.loss import fuse_targets, label_semantic_distribution, lskd_relation_loss, pair_alpha
from training_frameworks.lskd.targets import multi_hot_targets

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
AUX_PREFIX = "roi_heads.relation.framework_modules.LSKD."


# ------------------------------------------------------------------------------ hand example
STUDENT = [[1.0, 2.0, 0.5, -1.0], [0.3, -0.2, 0.1, 0.0], [-0.5, 1.5, 1.0, 2.0]]
TEACHER = [[0.2, 1.0, 3.0, 0.0], [2.0, 0.5, -1.0, 1.0], [0.0, 0.0, 1.0, -2.0]]
LABELS = [2, 0, 1]
WEIGHTS = [0.5, 1.0, 2.0, 3.0]


def _softmax(row, tau=1.0):
    exps = [math.exp(v / tau) for v in row]
    return [e / sum(exps) for e in exps]


def _hand_loss(alpha, tau, support, apply_to, kd_form, weights=None):
    """The LSKD.md section 2.2 loss, row by row in Python floats."""
    total, norm = 0.0, 0.0
    for z, t, y in zip(STUDENT, TEACHER, LABELS):
        if support == "all":
            q = _softmax(t, tau)
        else:
            q = [0.0] + _softmax(t[1:], tau)
        a = alpha if apply_to == "all" or (apply_to == "pos") == (y > 0) else 0.0
        p = _softmax(z)
        e = [1.0 if c == y else 0.0 for c in range(len(z))]
        if kd_form == "soft_ce":
            loss = -sum(((1 - a) * e[c] + a * q[c]) * math.log(p[c]) for c in range(len(z)))
        else:
            p_tau = _softmax(z, tau)
            kl = sum(q[c] * (math.log(q[c]) - math.log(p_tau[c])) for c in range(len(z)) if q[c] > 0)
            loss = -(1 - a) * math.log(p[y]) + a * tau ** 2 * kl
        w = 1.0 if weights is None else weights[y]
        total += w * loss
        norm += w
    return total / norm


@pytest.mark.parametrize("kd_form", ["soft_ce", "hinton"])
@pytest.mark.parametrize("support", ["all", "fg_only"])
@pytest.mark.parametrize("apply_to", ["all", "pos", "neg"])
def test_loss_equals_the_hand_computation(kd_form, support, apply_to):
    labels = torch.tensor(LABELS)
    logits, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    hard = F.one_hot(labels, 4).float()
    for tau, weights in ((1.0, None), (2.0, None), (2.0, WEIGHTS)):
        got = lskd_relation_loss(logits, hard, teacher, pair_alpha(labels, 0.3, apply_to), tau, support, kd_form,
                                 None if weights is None else torch.tensor(WEIGHTS))
        assert got.item() == pytest.approx(_hand_loss(0.3, tau, support, apply_to, kd_form, weights), rel=1e-5)


def test_loss_with_alpha_zero_is_cross_entropy_and_teacher_gets_no_gradient():
    logits = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    labels = torch.tensor(LABELS)
    loss = lskd_relation_loss(logits, F.one_hot(labels, 4).float(), teacher, pair_alpha(labels, 0.0), 2.0)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    lskd_relation_loss(logits, F.one_hot(labels, 4).float(), teacher, pair_alpha(labels, 0.5), 1.0).backward()
    assert teacher.grad is None and logits.grad is not None


def test_targets_sum_to_one():
    torch.manual_seed(0)
    labels = torch.tensor([0, 3, 1, 0, 2])
    teacher = torch.randn(5, 4) * 5
    for support in ("all", "fg_only"):
        lsd = label_semantic_distribution(teacher, 1.5, support)
        assert (lsd >= 0).all() and torch.allclose(lsd.sum(1), torch.ones(5))
        assert support == "all" or (lsd[:, 0] == 0).all()
        for apply_to in ("all", "pos", "neg"):
            s = fuse_targets(F.one_hot(labels, 4).float(), lsd, pair_alpha(labels, 0.7, apply_to))
            assert torch.allclose(s.sum(1), torch.ones(5))
    assert pair_alpha(labels, 0.7, "pos").tolist() == pytest.approx([0.0, 0.7, 0.7, 0.0, 0.7])


def test_multi_hot_targets_spread_over_every_gt_predicate():
    relations = np.array([[0, 1, 2], [0, 1, 3], [1, 2, 1], [0, 1, 2]])
    table = all_predicates_map(relations, 3, 4)
    assert table.shape == (3, 3, 4) and table.sum() == 3 and table[0, 1].tolist() == [0, 0, 1, 1]
    target = BoxList(torch.zeros(3, 4), (10, 10))
    target.add_field("relation_all", table, is_triplet=True)
    pairs = torch.tensor([[0, 1], [1, 2], [2, 0]])
    rows = multi_hot_targets([pairs], [target], torch.tensor([3, 1, 0]), 4)
    assert rows.tolist() == [[0.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]


def test_all_predicates_field_leaves_the_default_targets_alone(synthetic_data_dir, tmp_path):
    from maskrcnn_benchmark.data.build import build_dataset
    cfg = setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3)).cfg
    multi_cfg = setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3,
                                                    **{"DATASETS.KEEP_ALL_PREDICATES": True})).cfg
    plain, = build_dataset(cfg, cfg.DATASETS.TRAIN)
    multi, = build_dataset(multi_cfg, cfg.DATASETS.TRAIN)
    for index in range(len(plain)):
        np.random.seed(index)
        a, after_a = plain.get_groundtruth(index), np.random.random()
        np.random.seed(index)
        b, after_b = multi.get_groundtruth(index), np.random.random()
        assert after_a == after_b  # the field draws no random numbers
        assert not a.has_field("relation_all") and torch.equal(a.get_field("relation"), b.get_field("relation"))
        picked = a.get_field("relation")
        pairs = picked.nonzero()
        assert (b.get_field("relation_all")[pairs[:, 0], pairs[:, 1], picked[pairs[:, 0], pairs[:, 1]]] == 1).all()


# ----------------------------------------------------------------------------- training runs
def _opts(data_dir, out, max_iter, **extra):
    settings = {"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['LSKD']", "SEED": 0, "LSKD.REFRESH_PERIOD": 2,
                "LSKD.WARMUP_ITERS": 1}
    settings.update(extra)
    return small_overrides(data_dir, str(out), max_iter, **settings)


def _train(data_dir, out, max_iter=3, hooks=(), **extra):
    ctx = setup(config_file("predcls"), _opts(data_dir, out, max_iter, **extra))
    return train_with_frameworks(ctx.cfg, ctx, hooks=hooks)


def _final(out):
    return load_checkpoint_file(os.path.join(str(out), "model_final.pth"))


def test_alpha_zero_trains_plain_cross_entropy_bit_for_bit(synthetic_data_dir, tmp_path):
    plain = _train(synthetic_data_dir, tmp_path / "plain", **{"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "[]"})
    lskd = _train(synthetic_data_dir, tmp_path / "lskd", **{"LSKD.ALPHA": 0.0, "LSKD.REFRESH_PERIOD": 1})
    assert load_report(tmp_path / "lskd")["refresh_iterations"] == [1, 2]  # the snapshot ran, unused
    assert plain.state_dict().keys() == lskd.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, lskd.state_dict()[key]), key


class _Batch:
    """One training batch of the tiny set, on the CPU."""

    def __init__(self, cfg):
        images, targets = next(iter(make_data_loader(cfg, "train", False)))[:2]
        self.images, self.targets = move_to_device(images, torch.device("cpu")), targets


def _losses_through(model, batch, framework):
    """The head's losses before and after ``framework.relation_losses`` on one training forward."""
    seen = {}
    head = model.roi_heads.relation

    def before(b, losses):
        seen["before"] = dict(losses)
        return losses

    head.loss_hooks = [before, framework.relation_losses]
    model.train()
    after = model(batch.images, batch.targets)
    return seen["before"], after


def test_warm_up_and_stage_zero_keep_the_heads_loss(synthetic_data_dir, tmp_path):
    from maskrcnn_benchmark.engine.framework import attach_frameworks
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    for strategy in ("synchronous", "iterative"):
        ctx = setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3, **{
            "LSKD.STRATEGY": strategy, "LSKD.WARMUP_ITERS": 2}))
        model = build_detection_model(ctx.cfg)
        framework, = build_frameworks(ctx.cfg)
        attach_frameworks(model, [framework])
        batch = _Batch(ctx.cfg)
        before, after = _losses_through(model, batch, framework)  # iteration 1: warm-up / stage 0
        assert after["loss_rel"] is before["loss_rel"]
        assert ("loss_lskd_aux" in after) == (strategy == "synchronous")
        framework.progress.iteration = 2
        if strategy == "iterative":
            framework.progress.teacher.refresh(model.roi_heads.relation)
            framework.progress.refreshes.append(2)
        before, after = _losses_through(model, batch, framework)  # iteration 3: distilling
        assert after["loss_rel"] is not before["loss_rel"] and torch.isfinite(after["loss_rel"])


class _Snapshots(TrainHook):
    """After each step: whether the teacher equals the student's predictor, and whether it has grads."""

    def __init__(self):
        self.framework = None
        self.equal = []

    def after_step(self, iteration, model, outcome):
        teacher = self.framework.progress.teacher
        student = model.roi_heads.relation.predictor.state_dict()
        self.equal.append(all(torch.equal(v, student[k]) for k, v in teacher.predictor.state_dict().items()))
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_snapshot_teacher_is_frozen_and_refreshed_every_n_iterations(synthetic_data_dir, tmp_path):
    ctx = setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 5))
    framework, = build_frameworks(ctx.cfg)
    recorder = _Snapshots()
    recorder.framework = framework
    from maskrcnn_benchmark.engine.framework import FrameworkRunner
    model = FrameworkRunner(ctx.cfg, ctx, [framework], [recorder]).run()
    assert recorder.equal == [False, True, False, True, False]
    teacher = framework.progress.teacher
    assert not any(p is q for p in teacher.parameters() for q in model.parameters())
    assert all(not m.training for m in teacher.modules() if isinstance(m, torch.nn.Dropout))
    rates = [m.dropout for m in teacher.modules() if isinstance(getattr(m, "dropout", None), float)]
    assert rates and all(rate == 0.0 for rate in rates)  # the LSTMs' own dropout rates
    report = load_report(tmp_path)
    assert report["refresh_iterations"] == [2, 4] and report["first_distillation_iteration"] == 3
    assert report["settings"]["strategy"] == "iterative" and "loss_rel" in report["final_losses"]


def load_report(out):
    import json
    with open(os.path.join(str(out), REPORT_FILE)) as f:
        return json.load(f)


def test_aux_head_is_in_the_checkpoint_and_not_in_inference(synthetic_data_dir, tmp_path):
    model = _train(synthetic_data_dir, tmp_path, **{"LSKD.STRATEGY": "synchronous"})
    saved = _final(tmp_path)["model"]
    aux = [k for k in saved if k.startswith(AUX_PREFIX)]
    assert {k[len(AUX_PREFIX):] for k in aux} == {"layers.rel_compress.weight", "layers.rel_compress.bias",
                                                   "layers.freq_bias__obj_baseline.weight"}
    predictor = model.roi_heads.relation.predictor
    assert not torch.equal(saved[AUX_PREFIX + "layers.rel_compress.weight"], predictor.rel_compress.weight)
    assert load_report(tmp_path)["first_distillation_iteration"] == 2

    cfg = setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3)).cfg
    images, targets = next(iter(make_data_loader(cfg, "test", False)[0]))[:2]
    model.eval()
    with torch.no_grad():
        with_aux = model(images, targets)
        del model.roi_heads.relation.framework_modules["LSKD"]
        without = model(images, targets)
    for a, b in zip(with_aux, without):
        assert a.fields() == b.fields()
        assert all(torch.equal(a.get_field(f), b.get_field(f)) for f in a.fields())


class Killer(TrainHook):
    def __init__(self, at):
        self.at = at

    def after_step(self, iteration, model, outcome):
        if iteration == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("strategy", ["iterative", "synchronous"])
def test_killed_run_resumes_bit_identically(synthetic_data_dir, tmp_path, strategy):
    extra = {"LSKD.STRATEGY": strategy, "SOLVER.CHECKPOINT_PERIOD": 2}
    reference = _train(synthetic_data_dir, tmp_path / "a", 4, **extra)
    with pytest.raises(KeyboardInterrupt):
        _train(synthetic_data_dir, tmp_path / "b", 4, hooks=[Killer(3)], **extra)
    assert open(tmp_path / "b" / "last_checkpoint").read().strip() == "model_0000002.pth"
    _train(synthetic_data_dir, tmp_path / "b", 4, **extra)
    a, b = _final(tmp_path / "a"), _final(tmp_path / "b")
    assert a["model"].keys() == b["model"].keys() == reference.state_dict().keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["lskd"]["refreshes"] == b["lskd"]["refreshes"] == ([2] if strategy == "iterative" else [])
    for key, value in a["lskd"].get("teacher", {}).items():
        assert torch.equal(value, b["lskd"]["teacher"][key]), key
    assert load_report(tmp_path / "a") == load_report(tmp_path / "b")


def test_two_ranks_train_identical_parameters(synthetic_data_dir, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "lskd_dist_worker.py"), config_file("predcls"),
           str(tmp_path), *_opts(synthetic_data_dir, tmp_path, 2, **{"LSKD.REFRESH_PERIOD": 1})]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for strategy in ("iterative", "synchronous"):
        rank0, rank1 = (torch.load(tmp_path / strategy / f"rank{r}.pth", weights_only=True) for r in (0, 1))
        assert rank0.keys() == rank1.keys()
        assert any(k.startswith(AUX_PREFIX) for k in rank0) == (strategy == "synchronous")
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key]), (strategy, key)
        assert load_report(tmp_path / strategy)["first_distillation_iteration"] == 2  # both distilled


def test_uniform_multi_hot_trains(synthetic_data_dir, tmp_path):
    _train(synthetic_data_dir, tmp_path, 2, **{"LSKD.MULTI_GT": "uniform_multi_hot", "LSKD.REFRESH_PERIOD": 1,
                                               "DATASETS.KEEP_ALL_PREDICATES": True})
    assert load_report(tmp_path)["refresh_iterations"] == [1]
    assert math.isfinite(load_report(tmp_path)["final_losses"]["loss_rel"])


def test_stacks_with_hml_stages(synthetic_data_dir, tmp_path):
    """HML's stages with the LS-KD loss: each stage starts its own snapshot (refreshed after iteration 1)."""
    from hml_patch.stages import train_hml
    tree = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
    ctx = setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 2, **{
        "MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['HML', 'LSKD']", "HML.TREE": tree, "HML.STAGE_MAX_ITER": "[2, 2]",
        "LSKD.REFRESH_PERIOD": 1}))
    result = train_hml(ctx.cfg, ctx)
    assert [r["stage"] for r in result.reports] == [1, 2]
    head = result.model.roi_heads.relation
    assert head.loss_evaluator.rel_class_weights is not None and len(head.loss_hooks) == 2
    for stage in ("stage1", "stage2"):  # each stage's run writes its own report
        assert load_report(tmp_path / stage)["refresh_iterations"] == [1]


def test_settings_are_checked(synthetic_data_dir, tmp_path):
    with pytest.raises(ValueError, match="LSKD.KD_FORM should be one of"):
        build_frameworks(setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3,
                                                             **{"LSKD.KD_FORM": "kl"})).cfg)
    with pytest.raises(ValueError, match="DATASETS.KEEP_ALL_PREDICATES"):
        build_frameworks(setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3,
                                                             **{"LSKD.MULTI_GT": "uniform_multi_hot"})).cfg)
    framework, = build_frameworks(setup(config_file("predcls"), _opts(synthetic_data_dir, tmp_path, 3,
                                                                      **{"LSKD.REFRESH_PERIOD": 0})).cfg)
    assert isinstance(framework, LSKDFramework) and framework.refresh_period > 0
