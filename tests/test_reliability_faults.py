"""Reliability matrix, fault rows (issue 17): each fault tried on every training framework through the
public tool (tools/relation_train_net.py with KEY VALUE overrides), faults injected from outside
(signals, torch.save, PyTorch's global hooks), never through a framework's internals.

A framework is one ``Framework`` entry: add one to run every fault on it (its ``state_faults``: where a
NaN is planted in its state and how training must stop).
"""
import errno
import glob
import json
import os
import random
import re
import runpy
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import pytest
import torch

from fault_injection import at_step, failing_save, poison_trainable_linear
from maskrcnn_benchmark.engine.trainer import NonFiniteGradientError, NonFiniteLossError
from maskrcnn_benchmark.utils.checkpoint import CheckpointWriteError, load_checkpoint_file
from maskrcnn_benchmark.utils.finite import NonFiniteStateError, first_non_finite
from relation_tool_args import REPO, config_file, free_port, small_overrides

TOOL = os.path.join(REPO, "tools", "relation_train_net.py")
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_worker.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
HML_TREE = os.path.join(REPO, "configs", "hml", "synthetic_vg_hierarchy_tree.json")
WAIT_S = 120  # generous bound on a tool run that must end by itself
MODULES = "roi_heads.relation.framework_modules."  # where a framework's trainable modules sit in the model


@dataclass(frozen=True)
class StateFault:
    """A NaN planted in the first floating tensor under ``entry`` (a dotted path into the checkpoint the
    run resumes from) and how training must stop: ``error`` with a message matching ``message``
    (``{planted}``: the planted tensor's dotted path, escaped)."""

    entry: str
    error: type
    message: str


@dataclass(frozen=True)
class Framework:
    """How a framework trains through the tool: overrides, where its checkpoints go, what must match."""

    name: str
    max_iter: int  # SOLVER.MAX_ITER (per stage where the framework has stages)
    folders: Tuple[str, ...]  # checkpoint folders under OUTPUT_DIR, in training order
    finals: Tuple[str, ...]  # files that must be bit-identical to an uninterrupted run's (the first: the last model)
    state_key: Optional[str] = None  # checkpoint entry holding the framework's own state
    modules: Optional[str] = None  # its trainable modules: framework_modules[modules] (weights and optimizer)
    state_faults: Tuple[StateFault, ...] = ()
    active: Dict[str, Any] = field(default_factory=dict)  # "file:dotted.key" -> its value after the run
    overrides: Dict[str, Any] = field(default_factory=dict)


def _lskd(strategy: str) -> Dict[str, Any]:
    # active within 4 iterations: a snapshot at 2 (iterative), soft targets from 2 on (synchronous)
    return {"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['LSKD']", "LSKD.STRATEGY": strategy, "LSKD.REFRESH_PERIOD": 2,
            "LSKD.WARMUP_ITERS": 1}


SOFT_TARGETS = r"LS-KD soft targets hold NaN or Inf at iteration 3\b.*{source}"
FRAMEWORKS = (
    Framework("plain", 6, ("",), ("model_final.pth",)),
    Framework("hml", 4, ("stage1", "stage2"), ("stage2/model_final.pth", "stage2/importance_final.pth"),
              state_key="hml_importance",
              state_faults=(StateFault("hml_importance", NonFiniteStateError,
                                       r"hml_importance\.{planted} holds NaN or Inf at iteration 4"),),
              overrides={"MODEL.ROI_RELATION_HEAD.HML": True, "HML.TREE": HML_TREE, "HML.STAGE_MAX_ITER": "[4, 4]"}),
    Framework("lskd_iterative", 4, ("",), ("model_final.pth", "lskd_report.json"), state_key="lskd",
              state_faults=(StateFault("lskd.teacher", NonFiniteStateError,
                                       SOFT_TARGETS.format(source=r"lskd\.teacher, refreshed at iteration 2")),),
              overrides=_lskd("iterative")),
    Framework("lskd_synchronous", 4, ("",), ("model_final.pth", "lskd_report.json"), state_key="lskd",
              modules="LSKD",
              state_faults=(StateFault(f"model.{MODULES}LSKD", NonFiniteStateError,
                                       SOFT_TARGETS.format(source=r"framework_modules\.LSKD")),),
              overrides=_lskd("synchronous")),
    Framework("hierarchical_factorised", 4, ("",), ("model_final.pth",), modules="HierarchicalLoss",
              overrides={"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['HierarchicalLoss']", "HIER.TREE": HML_TREE,
                         "HIER.FORM": "factorised"}),
    Framework("ebm", 4, ("",), ("model_final.pth", "ebm_energies.json"), state_key="ebm_energy_log", modules="EBM",
              state_faults=(StateFault(f"model.{MODULES}EBM", NonFiniteLossError,
                                       r"iteration 3: loss_ebm_cd=nan, loss_ebm_l2=nan\."),
                            StateFault("ebm_energy_log.e_pos", NonFiniteStateError,
                                       r"ebm_energy_log\.e_pos holds NaN or Inf at iteration 3\b")),
              overrides={"MODEL.ROI_RELATION_HEAD.FRAMEWORKS": "['EBM']", "EBM.SAMPLER.ITERS": 2}),
)
IDS = [fw.name for fw in FRAMEWORKS]
STATE_FAULTS = [(fw, fault) for fw in FRAMEWORKS for fault in fw.state_faults]
STATE_FAULT_IDS = [f"{fw.name}-{fault.entry.split('.')[-1]}" for fw, fault in STATE_FAULTS]


def tool_opts(fw: Framework, data_dir: str, out: str, **extra) -> list:
    settings = {"SEED": 0, "SOLVER.CHECKPOINT_PERIOD": 2, **fw.overrides, **extra}
    return ["--config-file", config_file("predcls"), "--skip-test",
            *small_overrides(data_dir, out, fw.max_iter, **settings)]


def run_in_process(opts: list, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [TOOL, *opts])
    runpy.run_path(TOOL, run_name="__main__")


def run_worker(fault: str, opts: list, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, WORKER, *opts], cwd=REPO, env=dict(ENV, SGG_FAULT=fault),
                          capture_output=True, text=True, timeout=WAIT_S, **popen)


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


def training_state(fw: Framework, path: str) -> dict:
    """What must survive an interruption: a checkpoint's weights, optimizer, schedule, iteration, random
    state and framework state (not its descriptive metadata, which names the output folder); another
    file whole (a JSON report parsed)."""
    if path.endswith(".json"):
        with open(path) as f:
            return json.load(f)
    data = torch.load(path, map_location="cpu", weights_only=True)
    if "model" not in data:
        return data
    return {key: data[key] for key in ("model", "optimizer", "scheduler", "iteration", "rng", fw.state_key)
            if key in data}


def assert_checkpoints_intact(out: str) -> None:
    """Every last_checkpoint names a file that loads; every finished .pth loads and is finite."""
    for pointer in glob.glob(os.path.join(out, "**", "last_checkpoint"), recursive=True):
        with open(pointer) as f:
            named = os.path.join(os.path.dirname(pointer), f.read().strip())
        assert os.path.isfile(named), (pointer, named)
    for path in glob.glob(os.path.join(out, "**", "*.pth"), recursive=True):
        assert first_non_finite(torch.load(path, map_location="cpu", weights_only=True)) is None, path


def disk_full() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def pth_files(out: str) -> set:
    return {os.path.relpath(p, out) for p in glob.glob(os.path.join(out, "**", "*.pth"), recursive=True)}


@pytest.fixture(scope="module")
def reference(synthetic_data_dir, tmp_path_factory):
    """Per framework (computed once): (OUTPUT_DIR of an uninterrupted run, its atomic writes: (the number of
    the torch.save call, 1-based, the target it was renamed to, relative to OUTPUT_DIR))."""
    done: Dict[str, Tuple[str, list]] = {}

    def get(fw: Framework, monkeypatch) -> Tuple[str, list]:
        if fw.name not in done:
            out = str(tmp_path_factory.mktemp(f"reference_{fw.name}"))
            saves, targets = [], {}
            real_save, real_replace = torch.save, os.replace

            def recording_save(obj, f, *args, **kwargs):
                saves.append(str(f))
                return real_save(obj, f, *args, **kwargs)

            def recording_replace(src, dst, *args, **kwargs):
                targets[str(src)] = os.path.relpath(str(dst), out)
                return real_replace(src, dst, *args, **kwargs)

            monkeypatch.setattr(torch, "save", recording_save)
            monkeypatch.setattr(os, "replace", recording_replace)
            run_in_process(tool_opts(fw, synthetic_data_dir, out), monkeypatch)
            monkeypatch.undo()
            done[fw.name] = (out, [(i + 1, targets[path]) for i, path in enumerate(saves)
                                   if os.path.basename(path).startswith(".tmp_") and path in targets])
        return done[fw.name]

    return get


# ------------------------------------------------------------------- SIGKILL, SIGTERM, resume
def assert_framework_active(fw: Framework, out: str, plain_out: str) -> None:
    """The comparison is not vacuous: the framework acted in the short run (its ``active`` entries), and its
    modules are in the model, trained by the one optimizer (more parameter groups, one per parameter, than
    the plain model's), so their weights and optimizer state are among what was compared."""
    for where, expected in fw.active.items():
        name, key = where.split(":")
        value = training_state(fw, os.path.join(out, name))
        for part in key.split("."):
            value = value[part]
        assert (value.tolist() if isinstance(value, torch.Tensor) else value) == expected, (where, value)
    if fw.modules:
        final = training_state(fw, os.path.join(out, fw.finals[0]))
        assert any(key.startswith(f"{MODULES}{fw.modules}.") for key in final["model"]), fw.modules
        plain = training_state(FRAMEWORKS[0], os.path.join(plain_out, FRAMEWORKS[0].finals[0]))
        assert len(final["optimizer"]["param_groups"]) > len(plain["optimizer"]["param_groups"])


@pytest.mark.parametrize("kill_point", ["random_write", "final_write"])
@pytest.mark.parametrize("fw", FRAMEWORKS, ids=IDS)
def test_sigkill_inside_a_checkpoint_write_then_sigterm_then_resume_is_bit_identical(
        fw, kill_point, reference, synthetic_data_dir, tmp_path, monkeypatch):
    """SIGKILL in the middle of a checkpoint write: a randomly drawn one (seeded) that has a checkpoint before
    it and steps after it, or the write of the last ``model_final`` (its iteration's periodic checkpoint is
    already on disk). The previous checkpoints are intact. After a random write, the rerun gets SIGTERM after
    its first step: it writes a checkpoint of that iteration (not a periodic one) and exits 0. A last rerun
    finishes (after the final write: it trains nothing and writes the missing model_final); the final
    files (model, optimizer, schedule, RNG, the framework's state and report) equal the uninterrupted run's
    bit for bit."""
    plain_out, _ = reference(FRAMEWORKS[0], monkeypatch)
    ref_out, writes = reference(fw, monkeypatch)
    if kill_point == "random_write":
        rng = random.Random(f"issue17-{fw.name}")
        kill_write, target = rng.choice(writes[1:-1])  # a previous checkpoint exists, and steps are left after it
    else:
        kill_write, target = [write for write in writes if write[1] == fw.finals[0]][-1]
    out = str(tmp_path / "run")
    opts = tool_opts(fw, synthetic_data_dir, out)

    killed = run_worker(f"kill_save:{kill_write}", opts)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len(glob.glob(os.path.join(out, "**", ".tmp_*.pth"), recursive=True)) == 1  # killed inside the write
    assert not os.path.exists(os.path.join(out, target))
    assert_checkpoints_intact(out)

    if kill_point == "random_write":
        termed = run_worker("term_step:1", opts)
        assert termed.returncode == 0, termed.stderr[-3000:]
        stopped = re.search(r"SIGTERM received: checkpoint of iteration (\d+) of", termed.stdout + termed.stderr)
        assert stopped, termed.stdout[-3000:]
        iteration = int(stopped.group(1))
        tagged = []
        for folder in fw.folders:
            pointer = os.path.join(out, folder, "last_checkpoint")
            if os.path.isfile(pointer):
                with open(pointer) as f:
                    tagged.append(load_checkpoint_file(os.path.join(out, folder, f.read().strip()))["iteration"])
        assert iteration in tagged
        assert not all(os.path.isfile(os.path.join(out, name)) for name in fw.finals)  # it stopped, did not finish
    else:
        with open(os.path.join(out, os.path.dirname(target), "last_checkpoint")) as f:
            assert f.read().strip() == f"model_{fw.max_iter:07d}.pth"  # the previous checkpoint, of the last step

    run_in_process(opts, monkeypatch)
    for name in fw.finals:
        assert_same(training_state(fw, os.path.join(out, name)), training_state(fw, os.path.join(ref_out, name)), name)
    assert_framework_active(fw, out, plain_out)


# ------------------------------------------------------------------------------ full disk
@pytest.mark.parametrize("fw", FRAMEWORKS, ids=IDS)
def test_full_disk_during_a_checkpoint_write(fw, reference, synthetic_data_dir, tmp_path, monkeypatch):
    """The second checkpoint write fails with ENOSPC half-way: a clear error naming the intact previous one."""
    _, writes = reference(fw, monkeypatch)
    out = str(tmp_path / "run")
    with failing_save(writes[1][0], disk_full):
        with pytest.raises(CheckpointWriteError, match=r"No space left on device.*model_0000002\.pth is intact"):
            run_in_process(tool_opts(fw, synthetic_data_dir, out), monkeypatch)
    assert not glob.glob(os.path.join(out, "**", ".tmp_*"), recursive=True)
    with open(os.path.join(out, fw.folders[0], "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000002.pth"
    assert load_checkpoint_file(os.path.join(out, fw.folders[0], "model_0000002.pth"))["iteration"] == 2
    assert_checkpoints_intact(out)


# --------------------------------------------------------------------------------- NaN / Inf
@pytest.mark.parametrize("fw", FRAMEWORKS, ids=IDS)
@pytest.mark.parametrize("where,error,term", [("loss", NonFiniteLossError, r"loss_\w+=nan"),
                                              ("grad", NonFiniteGradientError, r"roi_heads\.relation\.\S+")])
def test_non_finite_loss_or_gradient_stops_naming_iteration_and_term(fw, where, error, term, synthetic_data_dir,
                                                                       tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    with poison_trainable_linear(iteration=2, where=where), pytest.raises(error, match=rf"iteration 2\b.*{term}"):
        run_in_process(tool_opts(fw, synthetic_data_dir, out), monkeypatch)
    assert pth_files(out) == set()  # nothing of iteration 2 was saved
    assert_checkpoints_intact(out)


def plant_nan(checkpoint: dict, entry: str) -> Optional[str]:
    """NaN into the first non-empty floating tensor whose dotted path (nested dict keys joined by ".", the
    model's flat keys as they are) starts with ``entry``; its path, or None when there is none."""
    def walk(state, where):
        for key, value in state.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(value, dict):
                yield from walk(value, path)
            else:
                yield path, value

    for path, value in walk(checkpoint, ""):
        if (path == entry or path.startswith(f"{entry}.")) and isinstance(value, torch.Tensor) \
                and value.is_floating_point() and value.numel():
            value.view(-1)[0] = float("nan")
            return path
    return None


@pytest.mark.parametrize("fw,fault", STATE_FAULTS, ids=STATE_FAULT_IDS)
def test_non_finite_framework_state_is_never_written(fw, fault, synthetic_data_dir, tmp_path, monkeypatch):
    """The framework's state turns NaN (planted in the checkpoint of iteration 2 that the run resumes from:
    HML importance, LS-KD's teacher snapshot or auxiliary head, EBM's energy model or energy log): training
    stops with the error the fault names (the checkpoint write refusing the entry, the framework's own check
    of its soft targets or energy log, the loss check on the energies' terms), naming the iteration, and
    writes no checkpoint (nor the energy log) after it."""
    out = str(tmp_path / "run")
    opts = tool_opts(fw, synthetic_data_dir, out)
    with at_step(2, lambda: os.kill(os.getpid(), signal.SIGTERM)), pytest.raises(SystemExit) as stop:
        run_in_process(opts, monkeypatch)
    assert stop.value.code == 0
    resume = os.path.join(out, fw.folders[0], "model_0000002.pth")
    checkpoint = torch.load(resume, weights_only=True)
    planted = plant_nan(checkpoint, fault.entry)
    assert planted, fault.entry
    torch.save(checkpoint, resume)
    before, logs = pth_files(out), {name: read(out, name) for name in reports(out)}
    with pytest.raises(fault.error, match=fault.message.format(planted=re.escape(planted.split(".", 1)[-1]))):
        run_in_process(opts, monkeypatch)
    assert pth_files(out) == before
    assert {name: read(out, name) for name in reports(out)} == logs  # not rewritten (with a NaN row)


def reports(out: str) -> set:
    """The energy log and LS-KD report (JSON written during training, besides the checkpoints)."""
    return {name for name in ("ebm_energies.json", "lskd_report.json") if os.path.isfile(os.path.join(out, name))}


def read(out: str, name: str) -> str:
    with open(os.path.join(out, name)) as f:
        return f.read()


# ----------------------------------------------------------------------------- a rank dies
def test_a_rank_that_stops_responding_fails_the_other_within_the_collective_timeout(synthetic_data_dir, tmp_path):
    """Two ranks as torchrun starts them (env://, gloo); rank 1 freezes (SIGSTOP) after its first step. Rank 0
    exits with a timeout error after DISTRIBUTED.COLLECTIVE_TIMEOUT_S instead of waiting forever."""
    fw = FRAMEWORKS[0]
    opts = tool_opts(fw, synthetic_data_dir, str(tmp_path / "ddp"), **{"DISTRIBUTED.COLLECTIVE_TIMEOUT_S": 10.0})
    port = str(free_port())
    ranks = []
    for rank in (0, 1):
        env = dict(ENV, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, SGG_FAULT="stop_step:1" if rank else "")
        ranks.append(subprocess.Popen([sys.executable, WORKER, *opts], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        stderr, _ = ranks[0].communicate(timeout=WAIT_S)
        assert ranks[0].returncode not in (0, None), stderr[-3000:]
        assert "Start training" in stderr and "Timed out waiting 10000ms" in stderr, stderr[-3000:]
    finally:
        for proc in ranks:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
