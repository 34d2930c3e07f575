"""The study runner: parallel, resumable, failures named, seconds kept; the aggregation helpers."""
import json
import logging
import os
import sys

import pytest

from maskrcnn_benchmark.engine.study import (StudyRun, aggregate, format_cell, grouped, markdown_table, run_study,
                                             summarize_metrics)

LOGGER = logging.getLogger("test_study")


def fake_run(tmp_path, name, seed, fail=False):
    """A run whose command writes one metrics.json with R@K = its seed / 10 (or exits 3)."""
    out = tmp_path / name / str(seed)
    target = out / "inference" / "test" / "metrics.json"
    code = ("import sys; sys.exit(3)" if fail else
            f"import json, os; os.makedirs({str(target.parent)!r}, exist_ok=True); "
            f"open({str(target)!r}, 'w').write(json.dumps({{'R': {seed / 10}}}))")
    return StudyRun(key=(name, str(seed)), out_dir=str(out), command=(sys.executable, "-c", code), datasets=("test",))


def test_runs_are_trained_once_and_their_seconds_kept(tmp_path):
    runs = [fake_run(tmp_path, "a", s) for s in range(3)]
    run_study(runs, parallel=2, logger=LOGGER, poll_s=0.05)
    assert all(run.finished() for run in runs) and all(run.seconds() >= 0 for run in runs)
    assert [run.metrics("test")["R"] for run in runs] == [0.0, 0.1, 0.2]
    stamps = [os.path.getmtime(run.metrics_file("test")) for run in runs]
    run_study(runs, parallel=2, logger=LOGGER, poll_s=0.05)  # resumable: nothing runs again
    assert [os.path.getmtime(run.metrics_file("test")) for run in runs] == stamps


def test_a_failure_names_the_run_and_its_log(tmp_path):
    with pytest.raises(RuntimeError, match=r"b/1 failed \(exit 3\) in command 1 of 1; see .*b/1/train.log"):
        run_study([fake_run(tmp_path, "b", 0), fake_run(tmp_path, "b", 1, fail=True)], parallel=1, logger=LOGGER,
                  poll_s=0.05)


def test_follow_up_commands_run_in_order_and_a_failed_one_reruns_the_run(tmp_path):
    first = fake_run(tmp_path, "c", 0)
    trace = tmp_path / "trace.txt"
    step = (sys.executable, "-c", f"open({str(trace)!r}, 'a').write('then;')")
    fail = (sys.executable, "-c", "import sys; sys.exit(4)")
    broken = StudyRun(first.key, first.out_dir, first.command, first.datasets, then=(step, fail))
    with pytest.raises(RuntimeError, match=r"c/0 failed \(exit 4\) in command 3 of 3"):
        run_study([broken], parallel=1, logger=LOGGER, poll_s=0.05)
    assert os.path.isfile(broken.metrics_file("test")) and not broken.finished()  # metrics alone do not finish it
    fixed = StudyRun(first.key, first.out_dir, first.command, first.datasets, then=(step, step))
    run_study([fixed], parallel=1, logger=LOGGER, poll_s=0.05)
    assert fixed.finished() and trace.read_text() == "then;then;then;"
    run_study([fixed], parallel=1, logger=LOGGER, poll_s=0.05)
    assert trace.read_text() == "then;then;then;"


def test_aggregation_and_table():
    summary = aggregate([0.5, 0.6, 0.7])
    assert summary == pytest.approx({"mean": 0.6, "min": 0.5, "max": 0.7, "n": 3})
    assert format_cell(summary) == "60.0 (50.0-70.0)"
    assert format_cell(aggregate([0.123])) == "12.3"
    assert markdown_table(["m", "x"], [["a", "1"]]) == "| m | x |\n|---|---|\n| a | 1 |"
    runs = [StudyRun(("s0", "ce"), "", (), ()), StudyRun(("s1", "ce"), "", (), ()), StudyRun(("s0", "hml"), "", (), ())]
    assert {k: [r.key for r in v] for k, v in grouped(runs, 0).items()} == {
        ("ce",): [("s0", "ce"), ("s1", "ce")], ("hml",): [("s0", "hml")]}


def test_summary_of_a_metrics_file():
    metrics = {"metrics": {f"{m}@K": {"50": v} for m, v in (("R", 0.5), ("mR", 0.3), ("Mean", 0.4), ("HR", 0.6),
                                                           ("mHR", 0.35))},
               "per_predicate": {"names": ["on", "sitting on", "has"], "mR": {"50": [0.9, 0.2, 0.7]}}}
    summary = summarize_metrics(metrics, coarse=["on", "has"], fine=["sitting on"], ks=("50",))
    assert summary["R@50"] == 0.5 and summary["HR@50"] == 0.6
    assert summary["coarse_mR@50"] == pytest.approx(0.8) and summary["fine_mR@50"] == pytest.approx(0.2)
