"""Reliability matrix, fault rows (issue 17): each fault tried on every training framework through the
public tool (tools/relation_train_net.py with KEY VALUE overrides), faults injected from outside
(signals, torch.save, PyTorch's global hooks), never through a framework's internals.

A framework is one ``Framework`` entry: add one to run every fault on it.
"""
import errno
import glob
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


@dataclass(frozen=True)
class Framework:
    """How a framework trains through the tool: overrides, where its checkpoints go, what must match."""

    name: str
    max_iter: int  # SOLVER.MAX_ITER (per stage where the framework has stages)
    folders: Tuple[str, ...]  # checkpoint folders under OUTPUT_DIR, in training order
    finals: Tuple[str, ...]  # files that must be bit-identical to an uninterrupted run's
    state_key: Optional[str] = None  # checkpoint entry holding the framework's own state
    overrides: Dict[str, Any] = field(default_factory=dict)


FRAMEWORKS = (
    Framework("plain", 6, ("",), ("model_final.pth",)),
    Framework("hml", 4, ("stage1", "stage2"), ("stage2/model_final.pth", "stage2/importance_final.pth"),
              state_key="hml_importance",
              overrides={"MODEL.ROI_RELATION_HEAD.HML": True, "HML.TREE": HML_TREE, "HML.STAGE_MAX_ITER": "[4, 4]"}),
)
IDS = [fw.name for fw in FRAMEWORKS]


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
    file whole."""
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
    """Per framework (computed once): (OUTPUT_DIR of an uninterrupted run, the paths of its torch.save calls)."""
    done: Dict[str, Tuple[str, list]] = {}

    def get(fw: Framework, monkeypatch) -> Tuple[str, list]:
        if fw.name not in done:
            out = str(tmp_path_factory.mktemp(f"reference_{fw.name}"))
            saves = []
            real_save = torch.save

            def recording_save(obj, f, *args, **kwargs):
                saves.append(str(f))
                return real_save(obj, f, *args, **kwargs)

            monkeypatch.setattr(torch, "save", recording_save)
            run_in_process(tool_opts(fw, synthetic_data_dir, out), monkeypatch)
            monkeypatch.undo()
            done[fw.name] = (out, saves)
        return done[fw.name]

    return get


# ------------------------------------------------------------------- SIGKILL, SIGTERM, resume
@pytest.mark.parametrize("fw", FRAMEWORKS, ids=IDS)
def test_sigkill_inside_a_checkpoint_write_then_sigterm_then_resume_is_bit_identical(
        fw, reference, synthetic_data_dir, tmp_path, monkeypatch):
    """SIGKILL in the middle of a randomly drawn checkpoint write (seeded): the previous checkpoints are
    intact. The rerun gets SIGTERM after its first step: it writes a checkpoint of that iteration (not a
    periodic one) and exits 0. A last rerun finishes; the final files equal the uninterrupted run's bit for bit."""
    ref_out, saves = reference(fw, monkeypatch)
    writes = [i + 1 for i, path in enumerate(saves) if os.path.basename(path).startswith(".tmp_")]
    rng = random.Random(f"issue17-{fw.name}")
    kill_write = rng.choice(writes[1:-1])  # a previous checkpoint exists, and steps are left after it
    out = str(tmp_path / "run")
    opts = tool_opts(fw, synthetic_data_dir, out)

    killed = run_worker(f"kill_save:{kill_write}", opts)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len(glob.glob(os.path.join(out, "**", ".tmp_*.pth"), recursive=True)) == 1  # killed inside the write
    assert_checkpoints_intact(out)

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

    run_in_process(opts, monkeypatch)
    for name in fw.finals:
        assert_same(training_state(fw, os.path.join(out, name)), training_state(fw, os.path.join(ref_out, name)), name)


# ------------------------------------------------------------------------------ full disk
@pytest.mark.parametrize("fw", FRAMEWORKS, ids=IDS)
def test_full_disk_during_a_checkpoint_write(fw, reference, synthetic_data_dir, tmp_path, monkeypatch):
    """The second checkpoint write fails with ENOSPC half-way: a clear error naming the intact previous one."""
    _, saves = reference(fw, monkeypatch)
    writes = [i + 1 for i, path in enumerate(saves) if os.path.basename(path).startswith(".tmp_")]
    out = str(tmp_path / "run")
    with failing_save(writes[1], disk_full):
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


@pytest.mark.parametrize("fw", [fw for fw in FRAMEWORKS if fw.state_key], ids=[fw.name for fw in FRAMEWORKS
                                                                               if fw.state_key])
def test_non_finite_framework_state_is_never_written(fw, synthetic_data_dir, tmp_path, monkeypatch):
    """The framework's state turns NaN (planted in the checkpoint it resumes from): the next checkpoint
    write stops training, naming the state's entry and the iteration, and writes nothing."""
    out = str(tmp_path / "run")
    opts = tool_opts(fw, synthetic_data_dir, out)
    with at_step(2, lambda: os.kill(os.getpid(), signal.SIGTERM)), pytest.raises(SystemExit) as stop:
        run_in_process(opts, monkeypatch)
    assert stop.value.code == 0
    resume = os.path.join(out, fw.folders[0], "model_0000002.pth")
    checkpoint = torch.load(resume, weights_only=True)

    def plant(state):
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
                value.view(-1)[0] = float("nan")
                return f"{key}"
            if isinstance(value, dict):
                inner = plant(value)
                if inner:
                    return f"{key}.{inner}"
        return None

    planted = plant(checkpoint[fw.state_key])
    assert planted
    torch.save(checkpoint, resume)
    before = pth_files(out)
    with pytest.raises(NonFiniteStateError, match=rf"{fw.state_key}\.{re.escape(planted)} holds NaN or Inf at "
                                                  rf"iteration 4"):
        run_in_process(opts, monkeypatch)
    assert pth_files(out) == before


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
