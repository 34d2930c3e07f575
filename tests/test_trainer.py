"""The training loop, resume, distributed training, inference loop and tool start-up on a toy problem."""
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_training import ToyDataset, ToyModel, make_loader, make_training, toy_cfg

from maskrcnn_benchmark.engine import (NonFiniteLossError, TrainHook, amp_settings, default_argument_parser,
                                       do_train, reduce_loss_dict, run_inference, setup)
from maskrcnn_benchmark.utils.checkpoint import Checkpointer
from maskrcnn_benchmark.utils.distributed import init_distributed

CPU = torch.device("cpu")


def dataset_mse(model, dataset):
    model.eval()
    with torch.no_grad():
        return float(((model(dataset.x) - dataset.y) ** 2).mean())


def train(save_dir, cfg, *, seed=0, hooks=(), val_fn=None, val_period=0, custom_scheduler=False,
          checkpoint_period=5, model_cls=ToyModel, logger=None):
    """One tool-like run: build, resume from save_dir if possible, train to MAX_ITER."""
    model, optimizer, scheduler = make_training(cfg, seed, model_cls)
    checkpointer = Checkpointer(None, model, optimizer, scheduler, save_dir=str(save_dir),
                                custom_scheduler=custom_scheduler)
    arguments = {"iteration": 0}
    arguments.update(checkpointer.load())
    loader = make_loader(ToyDataset(), cfg.SOLVER.MAX_ITER, start_iter=arguments["iteration"])
    summary = do_train(model, loader, optimizer, scheduler, checkpointer, CPU, checkpoint_period, arguments,
                       grad_clip=1.0, val_fn=val_fn, val_period=val_period, hooks=hooks, logger=logger)
    return model, optimizer, summary


class Recorder(TrainHook):
    def __init__(self, kill_at=None):
        self.iterations = []
        self.outcomes = []
        self.kill_at = kill_at

    def after_step(self, iteration, model, outcome):
        self.iterations.append(iteration)
        self.outcomes.append(outcome)
        if iteration == self.kill_at:
            raise KeyboardInterrupt


def test_loss_falls_and_checkpoints_are_written(tmp_path, caplog):
    cfg = toy_cfg(max_iter=40)
    cfg.SOLVER.BASE_LR = 0.05
    cfg.SOLVER.STEPS = (30,)
    dataset = ToyDataset()
    untrained = dataset_mse(ToyModel(0), dataset)
    with caplog.at_level(logging.INFO, logger="toy_trainer"):
        model, _, summary = train(tmp_path, cfg, checkpoint_period=20, logger=logging.getLogger("toy_trainer"))
    progress_lines = [r.getMessage() for r in caplog.records if "iter: " in r.getMessage()]
    assert len(progress_lines) == 2  # log_period 20; lr of the last group (a bias): 0.05 x 2 x rl 2 x 0.1
    assert re.fullmatch(r"eta: \d+:\d\d:\d\d  iter: 40  loss: [\d.]+ \([\d.]+\)  loss_l1: .*  "
                        r"lr: 0\.020000  max mem: 0", progress_lines[-1])
    assert summary.iteration == 40 and not summary.stopped_early
    assert dataset_mse(model, dataset) < 0.2 * untrained
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["model_0000020.pth", "model_0000040.pth",
                                                              "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    saved = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert saved["iteration"] == 40 and {"model", "optimizer", "scheduler"} <= set(saved)


def test_nan_loss_stops_with_iteration_and_term(tmp_path):
    class NaNAtThirdCall(ToyModel):
        calls = 0

        def forward(self, x, y=None):
            losses = super().forward(x, y)
            NaNAtThirdCall.calls += 1
            if NaNAtThirdCall.calls == 3:
                losses["loss_l1"] = losses["loss_l1"] * float("nan")
            return losses

    with pytest.raises(NonFiniteLossError, match=r"iteration 3: loss_l1=nan") as err:
        train(tmp_path, toy_cfg(max_iter=10), model_cls=NaNAtThirdCall)
    assert "loss_mse" not in str(err.value)
    assert not (tmp_path / "model_final.pth").exists()


@pytest.mark.parametrize("schedule,custom_scheduler", [("WarmupMultiStepLR", False), ("WarmupMultiStepLR", True),
                                                       ("WarmupReduceLROnPlateau", False)])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, schedule, custom_scheduler):
    cfg = toy_cfg(max_iter=20, schedule=schedule)

    def val_fn(model):  # depends only on the weights, so both runs see the same metrics
        return round(float(model.head.weight.detach().sum()), 3)

    kwargs = {"val_fn": val_fn, "val_period": 3, "custom_scheduler": custom_scheduler}
    reference, ref_optimizer, _ = train(tmp_path / "full", cfg, **kwargs)

    killer = Recorder(kill_at=13)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "killed", cfg, hooks=[killer], **kwargs)
    assert (tmp_path / "killed" / "last_checkpoint").read_text() == "model_0000010.pth"
    resumed_hook = Recorder()
    resumed, optimizer, summary = train(tmp_path / "killed", cfg, seed=7, hooks=[resumed_hook], **kwargs)
    assert resumed_hook.iterations[0] == 11 and summary.iteration == 20
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in ref_optimizer.param_groups]
    if schedule == "WarmupReduceLROnPlateau":  # the schedule decayed before and after the kill
        assert ref_optimizer.param_groups[0]["lr"] < cfg.SOLVER.BASE_LR * 2.0 * cfg.SOLVER.SCHEDULE.FACTOR ** 4


def test_plateau_reaching_max_decay_stops_early_and_saves_final(tmp_path):
    cfg = toy_cfg(max_iter=30, schedule="WarmupReduceLROnPlateau")
    cfg.SOLVER.SCHEDULE.MAX_DECAY_STEP = 2
    _, _, summary = train(tmp_path, cfg, val_fn=lambda model: 0.5, val_period=2)
    # 0.5 improves on the initial best (0) at iteration 2, then fails at 4 and 6 (patience 1).
    assert summary.stopped_early and summary.iteration == 6
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["iteration"] == 6


def test_hooks_see_unscaled_gradients_before_step():
    class GradProbe(TrainHook):
        def __init__(self):
            self.had_grads = []

        def after_backward(self, iteration, model):
            self.had_grads.append(all(p.grad is not None for p in model.parameters()))

    probe = GradProbe()
    cfg = toy_cfg(max_iter=3)
    model, optimizer, scheduler = make_training(cfg)
    checkpointer = Checkpointer(None, model, optimizer, scheduler, save_dir="")
    do_train(model, make_loader(ToyDataset(), 3), optimizer, scheduler, checkpointer, CPU, 0, {"iteration": 0},
             hooks=[probe])
    assert probe.had_grads == [True, True, True]


def test_step_outcome_reports_loss_and_clip_factor():
    """after_step gets the logged total loss and the factor clipping applied (gradients seen in
    before_step are the clipped ones, so their norm times 1/clip_coef is the unclipped norm)."""
    class NormProbe(TrainHook):
        def __init__(self):
            self.unclipped, self.clipped = [], []

        def after_backward(self, iteration, model):
            self.unclipped.append(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))

        def before_step(self, iteration, model):
            self.clipped.append(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))

    probe, recorder = NormProbe(), Recorder()
    cfg = toy_cfg(max_iter=3)
    model, optimizer, scheduler = make_training(cfg)
    checkpointer = Checkpointer(None, model, optimizer, scheduler, save_dir="")
    do_train(model, make_loader(ToyDataset(), 3), optimizer, scheduler, checkpointer, CPU, 0, {"iteration": 0},
             grad_clip=1e-3, hooks=[probe, recorder])
    assert recorder.iterations == [1, 2, 3]
    for outcome, unclipped, clipped in zip(recorder.outcomes, probe.unclipped, probe.clipped):
        assert outcome.applied and outcome.loss > 0 and outcome.clip_coef < 1.0
        assert clipped == pytest.approx(unclipped * outcome.clip_coef, rel=1e-5)


def test_bfloat16_autocast_trains_on_cpu():
    amp_dtype, scaler = amp_settings("bfloat16", CPU)
    assert amp_dtype is torch.bfloat16 and scaler is None
    cfg = toy_cfg(max_iter=4)
    model, optimizer, scheduler = make_training(cfg)
    checkpointer = Checkpointer(None, model, optimizer, scheduler, save_dir="")
    summary = do_train(model, make_loader(ToyDataset(), 4), optimizer, scheduler, checkpointer, CPU, 0,
                       {"iteration": 0}, amp_dtype=amp_dtype)
    assert summary.iteration == 4
    assert amp_settings("float32", CPU) == (None, None)
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        amp_settings("float16", CPU)
    with pytest.raises(ValueError, match="DTYPE should be one of"):
        amp_settings("float64", CPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast with GradScaler needs CUDA")
def test_float16_grad_scaler_trains_on_cuda(tmp_path):
    device = torch.device("cuda")
    amp_dtype, scaler = amp_settings("float16", device)
    cfg = toy_cfg(max_iter=6)
    model, optimizer, scheduler = make_training(cfg)
    model.to(device)
    checkpointer = Checkpointer(None, model, optimizer, scheduler, save_dir=str(tmp_path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    do_train(model, make_loader(ToyDataset(), 6), optimizer, scheduler, checkpointer, device, 3, {"iteration": 0},
             amp_dtype=amp_dtype, grad_scaler=scaler, grad_clip=1.0)
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert "grad_scaler" in torch.load(tmp_path / "model_final.pth", weights_only=True)


def test_reduce_loss_dict_single_process():
    reduced = reduce_loss_dict({"b": torch.tensor(2.0, requires_grad=True), "a": torch.tensor(1.0)})
    assert list(reduced) == ["a", "b"] and float(reduced["b"]) == 2.0 and not reduced["b"].requires_grad


def test_run_inference_visits_every_batch_and_restores_mode():
    dataset = ToyDataset(n=10)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=lambda b: (
        torch.stack([x for x, _, _ in b]), None, tuple(i for _, _, i in b)))
    model = ToyModel(0)
    model.train()
    seen = {}

    def on_batch(ids, outputs):
        assert outputs.device.type == "cpu" and not outputs.requires_grad
        seen.update(zip(ids, outputs[:, 0].tolist()))

    stats = run_inference(model, loader, CPU, on_batch)
    assert model.training
    assert stats.num_batches == 3 and stats.num_images == 10 and sorted(seen) == list(range(10))
    model.eval()
    with torch.no_grad():
        expected = model(dataset.x)[:, 0]
    assert torch.allclose(torch.tensor([seen[i] for i in range(10)]), expected)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path):
    script = Path(__file__).with_name("dist_toy_train.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(script), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, value in ranks[0]["final"].items():
        assert torch.equal(value, ranks[1]["final"][name]), name
        assert not torch.equal(value, ranks[0]["initial"][name]), name
    assert not torch.equal(ranks[0]["initial"]["head.weight"], ranks[1]["initial"]["head.weight"])
    # First pass over the data: the two shards are disjoint and cover the dataset.
    first_pass = [[i for batch in r["train_ids"][:4] for i in batch] for r in ranks]
    assert not set(first_pass[0]) & set(first_pass[1])
    assert set(first_pass[0]) | set(first_pass[1]) == set(range(32))
    assert sorted(ranks[0]["inference_ids"] + ranks[1]["inference_ids"]) == list(range(32))
    assert (tmp_path / "ckpt" / "last_checkpoint").read_text() == "model_final.pth"


def test_argument_parser_accepts_both_local_rank_spellings():
    parser = default_argument_parser("test")
    args = parser.parse_args(["--config-file", "a.yaml", "--local-rank=1", "SOLVER.MAX_ITER", "5"])
    assert (args.config_file, args.local_rank, args.skip_test, args.opts) == ("a.yaml", 1, False,
                                                                               ["SOLVER.MAX_ITER", "5"])
    assert parser.parse_args(["--local_rank", "2", "--skip-test"]).local_rank == 2
    assert parser.parse_args([]).local_rank is None


def test_setup_merges_freezes_and_saves_config(tmp_path, monkeypatch):
    for var in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "out"
    ctx = setup("", ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "7"],
                logger_name="setup_test")  # leaves the package logger of other tests alone
    assert ctx.cfg.is_frozen() and ctx.cfg.SOLVER.MAX_ITER == 7
    assert (ctx.distributed, ctx.local_rank, ctx.device) == (False, 0, CPU)
    assert "MAX_ITER: 7" in (out / "config.yml").read_text()
    assert "Running with config" in (out / "log.txt").read_text()
    for handler in ctx.logger.handlers:
        handler.close()
    assert init_distributed(3, "cpu") == (False, 3, CPU)
