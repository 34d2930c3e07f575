"""HML's stage runner on the tiny synthetic set: both stages through the tools with their reports,
the final model evaluated and compatible with plain checkpoints; a killed run resumes to the
same bits; two ranks keep identical importance; the runner's pieces (schedule scaling, settings,
the predictor wrapper, the CR/MR terms, the paper's class weights) on their own."""
import json
import logging
import os
import statistics
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import hml_patch  # noqa: F401  (the HML config group and framework, before any config is loaded)
from hml_patch.config import DEFAULT_PARAM_FILTER, HMLSettings
from hml_patch.importance import ImportanceState
from hml_patch.framework import HMLFramework, StageTerms, mr_parameters
from hml_patch.losses import class_balanced_weights, concept_reconstruction_loss
from hml_patch.stages import (IMPORTANCE_FINAL, STAGE_REPORT, StagePlan, load_tree, stage_config, teacher_source,
                              train_hml)
from hml_patch.teacher import RelationTeacher, TeacherLogitCache
from maskrcnn_benchmark.data import make_data_loader
from maskrcnn_benchmark.data.build import build_dataset
from maskrcnn_benchmark.engine.defaults import load_config, setup
from maskrcnn_benchmark.engine.framework import attach_frameworks
from maskrcnn_benchmark.engine.relation_train import freeze_detector
from maskrcnn_benchmark.engine.trainer import TrainHook
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.roi_heads.relation_head.relation_head import RelationBatch
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file
from relation_tool_args import REPO, config_file, free_port, small_overrides

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
TREE_FILE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
STAGE_ITERS = (4, 6)
TEST_SET = "synthetic_vg_test"
REPORT_KEYS = {"stage", "stage_predicates", "old_predicates", "images_kept", "images_total", "stage_predicate_counts",
               "class_weights", "cr_weight", "mr_weight", "final_losses", "parameter_importance"}
# The authors' stage-1 predicates (HML.md section 2).
OFFICIAL_STAGE1 = ("above", "behind", "has", "holding", "in", "near", "of", "on", "wearing", "with")


def hml_overrides(data_dir, out_dir, **extra):
    """Tiny HML run: stages of 4 and 6 iterations, checkpoints every 2, the generator's two-layer tree."""
    settings = {"SOLVER.CHECKPOINT_PERIOD": 2, "MODEL.ROI_RELATION_HEAD.HML": True, "HML.TREE": TREE_FILE,
                "HML.STAGE_MAX_ITER": f"[{STAGE_ITERS[0]}, {STAGE_ITERS[1]}]"}
    settings.update(extra)
    return small_overrides(data_dir, out_dir, max(STAGE_ITERS), **settings)


def tree_layers():
    """(predicate names by id, [layer-1 ids, layer-2 ids]) of the shipped tree file."""
    with open(TREE_FILE) as f:
        tree = json.load(f)
    return tree["predicates"], [layer["ids"] for layer in tree["layers"]]


def dataset_info(data_dir):
    with open(os.path.join(data_dir, "synthetic_vg", "synthetic_vg_info.json")) as f:
        return json.load(f)


def h5_layer_pure_predicates(data_dir, layer):
    """Predicate ids of each layer-pure train image, read row by row from the h5 (the rules of
    test_hml_layer_pure.brute_force_pure_image_ids: split 0, with boxes and relations, after the
    first num_val_im images)."""
    folder = os.path.join(data_dir, "synthetic_vg")
    with h5py.File(os.path.join(folder, "VG-SGG-with-attri.h5"), "r") as h5:
        split, first_box = h5["split"][()], h5["img_to_first_box"][()]
        first_rel, last_rel = h5["img_to_first_rel"][()], h5["img_to_last_rel"][()]
        predicates = h5["predicates"][()].reshape(-1)
    rows = [r for r in range(len(split)) if split[r] == 0 and first_box[r] >= 0 and first_rel[r] >= 0]
    kept = []
    for row in rows[dataset_info(data_dir)["num_val_im"]:]:
        image = predicates[first_rel[row]:last_rel[row] + 1].astype(np.int64)
        if all(int(p) in layer for p in image):
            kept.append(image)
    return kept


def assert_same(a, b, where="state"):
    """Nested dicts / lists of tensors and scalars: equal keys, bit-identical tensors, equal scalars."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(set(a) ^ set(b)))
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def _run_tool(tool, opts, timeout=300):
    cmd = [sys.executable, os.path.join(REPO, "tools", tool), "--config-file", config_file("predcls"), *opts]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _read_json(path):
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------ tools
def test_hml_tool_trains_both_stages_and_evaluates(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "hml")
    opts = hml_overrides(synthetic_data_dir, out)
    _run_tool("relation_train_net.py", opts)

    names, layers = tree_layers()
    info = dataset_info(synthetic_data_dir)
    for stage in (1, 2):
        folder = os.path.join(out, f"stage{stage}")
        for name in ("model_final.pth", IMPORTANCE_FINAL, STAGE_REPORT):
            assert os.path.isfile(os.path.join(folder, name)), (stage, name)
        assert load_checkpoint_file(os.path.join(folder, "model_final.pth"))["iteration"] == STAGE_ITERS[stage - 1]
        report = _read_json(os.path.join(folder, STAGE_REPORT))
        assert REPORT_KEYS <= set(report), REPORT_KEYS - set(report)
        assert report["stage"] == stage
        assert report["stage_predicates"] == [names[i] for i in layers[stage - 1]]
        assert report["old_predicates"] == [names[i] for layer in layers[:stage - 1] for i in layer]

        pure = h5_layer_pure_predicates(synthetic_data_dir, set(layers[stage - 1]))
        assert 0 < report["images_kept"] == len(pure) < report["images_total"] == info["layer_purity"]["images"]
        counts = np.bincount(np.concatenate(pure), minlength=len(names))
        assert report["stage_predicate_counts"] == {names[i]: int(counts[i]) for i in layers[stage - 1]}
        assert set(report["class_weights"]) == {"__background__", *report["stage_predicates"]}

        losses = report["final_losses"]
        assert {"loss", "loss_rel"} <= set(losses)
        if stage == 1:
            assert not {"loss_cr", "loss_mr"} & set(losses)
            assert report["cr_weight"] == report["mr_weight"] == 0.0
        else:
            assert {"loss_cr", "loss_mr"} <= set(losses)
            new, old = len(layers[1]), len(layers[0])
            assert report["cr_weight"] == pytest.approx(old / new)  # alpha = N_old / N_new
            assert report["mr_weight"] == pytest.approx(0.5 * (new + old) / new)  # beta, lambda 0.5
            assert losses["loss_mr"] > 0  # a fresh student starts away from the stage-1 parameters
        importance = report["parameter_importance"]
        assert importance and all({"fisher", "omega", "numel"} <= set(v) for v in importance.values())
        assert all(name.startswith(DEFAULT_PARAM_FILTER) for name in importance)

    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == os.path.join("stage2", "model_final.pth")
    metrics_file = os.path.join(out, "inference", TEST_SET, "metrics.json")
    trained = _read_json(metrics_file)
    assert trained["num_images_evaluated"] > 0
    os.remove(metrics_file)

    _run_tool("relation_test_net.py", opts)
    tested = _read_json(metrics_file)
    for key in ("R@K", "mR@K"):
        assert tested["metrics"][key] == trained["metrics"][key], key

    # The final checkpoint is a plain relation model's: same keys, loads strictly.
    final = load_checkpoint_file(os.path.join(out, "stage2", "model_final.pth"))["model"]
    plain = build_detection_model(load_config(config_file("predcls"), hml_overrides(
        synthetic_data_dir, out, **{"MODEL.ROI_RELATION_HEAD.HML": False})))
    assert set(final) == set(plain.state_dict())
    plain.load_state_dict(final)


# ------------------------------------------------------------------------------ kill and resume
class Killer(TrainHook):
    """Raises KeyboardInterrupt in the ``after_calls``-th after_step of a train_hml call (HML's hooks
    run in every stage, so the count spans stages); records the iteration it stopped at."""

    def __init__(self, after_calls):
        self.after_calls = after_calls
        self.calls = 0
        self.killed_at = None

    def after_step(self, iteration, model, outcome):
        self.calls += 1
        if self.calls == self.after_calls:
            self.killed_at = iteration
            raise KeyboardInterrupt


class LossRecorder(TrainHook):
    """Every iteration's loss terms, in order across the stages."""

    def __init__(self):
        self.losses = []

    def after_step(self, iteration, model, outcome):
        self.losses.append({"loss": outcome.loss, **outcome.losses})


def _medians(records):
    return {name: float(statistics.median(r[name] for r in records)) for name in records[0]}


def _train(data_dir, out, hooks=()):
    ctx = setup(config_file("predcls"), hml_overrides(data_dir, out))
    return train_hml(ctx.cfg, ctx, hooks=hooks)


def _killed(data_dir, out, after_calls):
    killer = Killer(after_calls)
    with pytest.raises(KeyboardInterrupt):
        _train(data_dir, out, hooks=[killer])
    return killer.killed_at


def _last_checkpoint(folder):
    with open(os.path.join(folder, "last_checkpoint")) as f:
        return f.read().strip()


def test_hml_stage2_kill_and_resume_is_bit_identical(synthetic_data_dir, tmp_path):
    """Runs killed inside stage 2 (B), and inside stage 1 then stage 2 (C), resume to run A's bits.

    A killed stage resumes at its last periodic checkpoint (every 2 iterations). The final
    model, the importance state (live and stage2/importance_final.pth) and the stage reports
    (including the final-loss medians, whose window travels in the checkpoints; not the teacher
    cache's hit counts) equal run A's.
    """
    recorder = LossRecorder()
    a = _train(synthetic_data_dir, str(tmp_path / "a"), hooks=[recorder])
    assert [r["stage"] for r in a.reports] == [1, 2] and len(recorder.losses) == sum(STAGE_ITERS)
    stage_start = {1: 0, 2: STAGE_ITERS[0]}
    for report in a.reports:
        first = stage_start[report["stage"]]
        assert report["final_losses"] == _medians(recorder.losses[first:first + STAGE_ITERS[report["stage"] - 1]])

    out_b = str(tmp_path / "b")
    # Stage 1 makes 4 calls; the 7th is stage 2's iteration 3, killed before its checkpoint hook ran.
    assert _killed(synthetic_data_dir, out_b, STAGE_ITERS[0] + 3) == 3
    assert os.path.isfile(os.path.join(out_b, "stage1", STAGE_REPORT))
    assert not os.path.exists(os.path.join(out_b, "stage2", STAGE_REPORT))
    assert _last_checkpoint(os.path.join(out_b, "stage2")) == "model_0000002.pth"
    b = _train(synthetic_data_dir, out_b)

    out_c = str(tmp_path / "c")
    assert _killed(synthetic_data_dir, out_c, 3) == 3  # stage 1, iteration 3
    assert _last_checkpoint(os.path.join(out_c, "stage1")) == "model_0000002.pth"
    # Resumed: stage-1 iterations 3 and 4, then stage-2 iterations 1..3.
    assert _killed(synthetic_data_dir, out_c, 5) == 3
    assert _last_checkpoint(os.path.join(out_c, "stage2")) == "model_0000002.pth"
    c = _train(synthetic_data_dir, out_c)

    a_importance = torch.load(os.path.join(str(tmp_path / "a"), "stage2", IMPORTANCE_FINAL), weights_only=True)
    for run, out in ((b, out_b), (c, out_c)):
        assert_same(run.model.state_dict(), a.model.state_dict(), "model")
        assert_same(run.importance.state_dict(), a.importance.state_dict(), "importance")
        assert_same(torch.load(os.path.join(out, "stage2", IMPORTANCE_FINAL), weights_only=True), a_importance,
                    "importance_final")
        assert_same(load_checkpoint_file(os.path.join(out, "stage2", "model_final.pth"))["model"],
                    a.model.state_dict(), "model_final")
        # The teacher cache starts empty after a resume, so only its hit counts may differ.
        strip = [{k: v for k, v in r.items() if k != "teacher_cache"} for r in run.reports]
        assert strip == [{k: v for k, v in r.items() if k != "teacher_cache"} for r in a.reports]


# ----------------------------------------------------------------------------------- two ranks
def test_hml_two_ranks_have_identical_importance(synthetic_data_dir, tmp_path):
    out = str(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "hml_dist_worker.py"), config_file("predcls"),
           *hml_overrides(synthetic_data_dir, out, **{"SOLVER.IMS_PER_BATCH": 2})]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Using 2 process(es)" in proc.stdout + proc.stderr

    rank0, rank1 = (torch.load(os.path.join(out, f"importance_rank{r}.pth"), weights_only=True) for r in (0, 1))
    assert_same(rank0, rank1, "importance")
    assert rank0["stages_finished"] == 2
    buffers = {"fisher", "omega_raw", "pending", "parent_fisher", "parent_omega", "parent_theta"}
    assert rank0["params"] and all(set(p) == buffers for p in rank0["params"].values())
    omega = torch.cat([p["parent_omega"].flatten() for p in rank0["params"].values()])
    assert omega.min() < omega.max()  # the importance came from training, not from a constant
    params0, params1 = (torch.load(os.path.join(out, f"relation_rank{r}.pth"), weights_only=True) for r in (0, 1))
    assert_same(params0, params1, "relation parameters")


# ---------------------------------------------------------------------------- runner pieces
@pytest.fixture(scope="module")
def unit_cfg(synthetic_data_dir, tmp_path_factory):
    return load_config(config_file("predcls"), hml_overrides(synthetic_data_dir, str(tmp_path_factory.mktemp("unit"))))


@pytest.fixture(scope="module")
def train_datasets(unit_cfg):
    return build_dataset(unit_cfg, unit_cfg.DATASETS.TRAIN)


def _with(cfg, *opts):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    return cfg


def test_stage_config_scales_the_schedule(unit_cfg):
    cfg = _with(unit_cfg, "SOLVER.MAX_ITER", 1000, "SOLVER.STEPS", (600, 900))
    short = stage_config(cfg, 100)
    assert short.SOLVER.MAX_ITER == 100 and tuple(short.SOLVER.STEPS) == (60, 90) and short.is_frozen()
    assert tuple(stage_config(cfg, 2000).SOLVER.STEPS) == (1200, 1800)
    assert tuple(stage_config(cfg, 1).SOLVER.STEPS) == (1, 1)  # never a step at iteration 0
    assert cfg.SOLVER.MAX_ITER == 1000 and tuple(cfg.SOLVER.STEPS) == (600, 900)


def test_settings_errors_and_official_default_tree(unit_cfg, train_datasets):
    with pytest.raises(ValueError, match="HML.MODE"):
        HMLSettings.from_config(_with(unit_cfg, "HML.MODE", "bogus"))
    with pytest.raises(ValueError, match="HML.TREE"):
        HMLSettings.from_config(_with(unit_cfg, "HML.TREE", ""))
    with pytest.raises(ValueError, match="HML.STAGE_MAX_ITER"):
        HMLSettings.from_config(_with(unit_cfg, "HML.STAGE_MAX_ITER", "[4, 0]"))
    with pytest.raises(ValueError, match="HML.CB_GAMMA"):
        HMLSettings.from_config(_with(unit_cfg, "HML.CB_GAMMA", 1.0))

    names = train_datasets[0].ind_to_predicates
    official = HMLSettings.from_config(_with(unit_cfg, "HML.MODE", "official", "HML.TREE", ""))
    assert official.tree == "" and official.fisher == "ema"
    tree = load_tree(official, names, [1] * len(names))
    first = {names[i] for i in tree.layers[0]}
    assert first == {n for n in OFFICIAL_STAGE1 if n in names} and len(first) >= 2
    assert {names[i] for i in tree.layers[1]} == set(names[1:]) - first
    with pytest.raises(FileNotFoundError, match="HML.TREE"):
        load_tree(HMLSettings.from_config(_with(unit_cfg, "HML.TREE", "no/such/tree.json")), names, [1] * len(names))


def _build(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_detection_model(cfg)
    freeze_detector(model)
    return model


def test_hml_model_has_the_plain_keys(unit_cfg):
    """HML trains the configured predictor itself: its checkpoints fit a plain model both ways."""
    hml = _build(unit_cfg)
    plain = _build(_with(unit_cfg, "MODEL.ROI_RELATION_HEAD.HML", False), seed=1)
    assert type(hml.roi_heads.relation.predictor) is type(plain.roi_heads.relation.predictor)
    assert list(hml.state_dict()) == list(plain.state_dict())
    hml.load_state_dict(plain.state_dict())  # strict both ways
    assert_same(hml.state_dict(), plain.state_dict(), "loaded")
    fresh = _build(_with(unit_cfg, "MODEL.ROI_RELATION_HEAD.HML", False), seed=2)
    fresh.load_state_dict(hml.state_dict())
    assert_same(fresh.state_dict(), plain.state_dict(), "reloaded")


def _captured_batch(cfg, model):
    """(batch, images, targets): one training batch of ``cfg``'s loader, and the ``RelationBatch``
    the relation head hands to the frameworks' loss hooks for it."""
    class Capture:
        batch = None

        def __call__(self, batch, losses):
            Capture.batch = batch
            return losses

    head = model.roi_heads.relation
    head.loss_hooks = [Capture()]
    images, targets, _ = next(iter(make_data_loader(cfg, "train")))
    model(images, targets)
    head.loss_hooks = []
    return Capture.batch, images, targets


def test_stage_terms_cr_and_mr(unit_cfg):
    model = _build(unit_cfg)
    model.train()
    for module in model.modules():  # the teacher uses BatchNorm's running statistics; so does this student
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    head = model.roi_heads.relation
    predictor = head.predictor
    batch, images, targets = _captured_batch(unit_cfg, model)
    student = torch.cat(list(batch.rel_logits))
    assert student.requires_grad and student.shape[0] > 0

    importance = ImportanceState(mr_parameters(predictor, DEFAULT_PARAM_FILTER))
    importance.finalize_stage()  # parent = the current parameters: MR is 0
    old = [1, 4, 7]
    teacher = RelationTeacher.from_head(head)
    terms = StageTerms(teacher, lambda s, t: concept_reconstruction_loss(s, t, old), 0.7, importance, 0.3, "l2")
    same = terms(batch)
    assert torch.equal(torch.cat(teacher(batch)), student.detach())  # a copy scores the same pairs alike
    assert same["loss_cr"].item() == pytest.approx(0.0, abs=1e-12)
    assert same["loss_mr"].item() == 0.0

    with torch.no_grad():
        for p in teacher.predictor.parameters():
            p.add_(0.1 * torch.randn_like(p))
    differ = terms(batch)
    teacher_logits = torch.cat(teacher(batch))
    expected = 0.7 * concept_reconstruction_loss(student, teacher_logits, old)
    assert differ["loss_cr"].item() > 1e-6
    assert torch.allclose(differ["loss_cr"], expected, rtol=1e-6, atol=0)
    differ["loss_cr"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in predictor.parameters())
    assert all(p.grad is None for p in teacher.parameters())

    # Set on the attached framework, the head adds both terms to the training losses; unset, none.
    framework = HMLFramework(HMLSettings.from_config(unit_cfg))
    attach_frameworks(model, [framework])
    framework.stage_terms = terms
    losses = model(images, targets)
    assert {"loss_cr", "loss_mr"} <= set(losses) and losses["loss_cr"].item() > 0
    framework.stage_terms = None
    assert not {"loss_cr", "loss_mr"} & set(model(images, targets))


def test_paper_class_weights_come_from_the_kept_images(unit_cfg, train_datasets, synthetic_data_dir):
    cfg = _with(unit_cfg, "HML.CB_GAMMA", 0.9, "HML.BG_WEIGHT", 0.5, "HML.CR_WEIGHT", 2.0, "HML.MR_WEIGHT", 3.0)
    settings = HMLSettings.from_config(cfg)
    names = train_datasets[0].ind_to_predicates
    tree = load_tree(settings, names, [1] * len(names))
    _, layers = tree_layers()
    assert tree.layers == layers
    for stage in (1, 2):
        plan = StagePlan(settings, tree, stage, train_datasets)
        pure = h5_layer_pure_predicates(synthetic_data_dir, set(layers[stage - 1]))
        counts = torch.as_tensor(np.bincount(np.concatenate(pure), minlength=len(names)))
        assert plan.images_kept == len(pure)
        assert torch.equal(plan.class_weights, class_balanced_weights(counts, layers[stage - 1], 0.9, 0.5))
        outside = [i for i in range(1, len(names)) if i not in layers[stage - 1]]
        assert plan.class_weights[0] == 0.5 and (plan.class_weights[outside] == 0).all()
        new, old = len(layers[stage - 1]), sum(len(layer) for layer in layers[:stage - 1])
        assert plan.cr_weight == pytest.approx(2.0 * old / new)
        assert plan.mr_weight == pytest.approx(3.0 * 0.5 * (new + old) / new)


@pytest.mark.parametrize("predictor", ["MotifPredictor", "VCTreePredictor", "TransformerPredictor"])
def test_teacher_cache_serves_the_teachers_logits(unit_cfg, predictor):
    """The cache equals the per-step teacher on the sampled pairs, computes an image once, draws no
    random numbers (dropout off, even in the tree LSTMs and the MOTIFS decoder) and keys on the boxes."""
    cfg = _with(unit_cfg, "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor,
                "MODEL.ROI_RELATION_HEAD.CONTEXT_DROPOUT_RATE", 0.5)
    model = _build(cfg).train()
    batch, _, _ = _captured_batch(cfg, model)
    teacher = RelationTeacher.from_head(model.roi_heads.relation)
    cache = TeacherLogitCache(teacher, chunk_pairs=5)
    rng = torch.get_rng_state()
    direct = teacher(batch)
    cached = cache(batch)
    assert torch.equal(torch.get_rng_state(), rng)
    for a, b in zip(direct, cached):
        assert a.shape == b.shape and a.shape[0] > 0
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)  # other batch company: float rounding only
    assert cache.misses == len(batch.proposals) and cache.hits == 0
    again = cache(batch)
    assert cache.hits == len(batch.proposals) and all(torch.equal(a, b) for a, b in zip(cached, again))
    moved = list(batch.proposals)
    moved[0] = BoxList(moved[0].bbox + 1.0, moved[0].size)
    moved[0].add_field("labels", batch.proposals[0].get_field("labels"))
    cache(RelationBatch(batch.features, moved, batch.rel_pair_idxs, batch.rel_labels, batch.rel_binarys, [], []))
    assert cache.misses == len(batch.proposals) + 1


def test_imp_runs_the_teacher_every_step(unit_cfg):
    settings = HMLSettings.from_config(unit_cfg)
    model = _build(_with(unit_cfg, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "IMPPredictor"))
    teacher = RelationTeacher.from_head(model.roi_heads.relation)
    logger = logging.getLogger("test")
    assert teacher_source(teacher, settings, "IMPPredictor", logger) is teacher
    assert isinstance(teacher_source(teacher, settings, "MotifPredictor", logger), TeacherLogitCache)
    off = HMLSettings.from_config(_with(unit_cfg, "HML.TEACHER_CACHE", False))
    assert teacher_source(teacher, off, "MotifPredictor", logger) is teacher
