"""Studies: many ``tools/relation_train_net.py`` runs, run in parallel, resumable, summarised in one table.

A study is a list of :class:`StudyRun` (a training command, optionally followed by more
commands such as a threshold tuning and a test, with the folder it writes). ``run_study``
trains the unfinished runs, ``parallel`` at a time with one thread each, and records each
run's wall-clock seconds in its folder once its last command succeeded, so a study stopped
half-way continues where it was and still reports every run's cost.
``aggregate`` gives mean, min and max over seeds; ``markdown_table`` formats them.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from maskrcnn_benchmark.utils.atomic_io import atomic_path

SECONDS_FILE = "run_seconds.json"


@dataclass(frozen=True)
class StudyRun:
    """One training run: ``key`` names it (e.g. seed, mode, predictor, method), ``out_dir`` is its
    OUTPUT_DIR, ``command`` its training argv, ``then`` the argvs run after it in order (e.g. tune
    a threshold, test with it), ``datasets`` the test sets whose metrics it must write. It is
    finished when those metrics exist and, for a run with follow-up commands, when the seconds
    file written after its last command exists (a kill between commands re-runs them all)."""

    key: Tuple[str, ...]
    out_dir: str
    command: Tuple[str, ...]
    datasets: Tuple[str, ...]
    then: Tuple[Tuple[str, ...], ...] = ()

    @property
    def commands(self) -> Tuple[Tuple[str, ...], ...]:
        return (self.command, *self.then)

    def metrics_file(self, dataset: str) -> str:
        return os.path.join(self.out_dir, "inference", dataset, "metrics.json")

    def finished(self) -> bool:
        metrics = all(os.path.isfile(self.metrics_file(d)) for d in self.datasets)
        return metrics and (not self.then or os.path.isfile(os.path.join(self.out_dir, SECONDS_FILE)))

    def metrics(self, dataset: str) -> Dict:
        with open(self.metrics_file(dataset)) as f:
            return json.load(f)

    def seconds(self) -> Optional[float]:
        """Wall-clock seconds of its training command, when it was trained by a study."""
        path = os.path.join(self.out_dir, SECONDS_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return float(json.load(f)["seconds"])


def run_study(runs: Sequence[StudyRun], parallel: int, logger: logging.Logger,
              env: Optional[Mapping[str, str]] = None, poll_s: float = 1.0) -> None:
    """Train every unfinished run, ``parallel`` at a time (one thread each), each run's commands one
    after the other into its ``train.log``; the first failure stops the others and raises, naming
    the run and its log."""
    pending = [run for run in runs if not run.finished()]
    skipped = len(runs) - len(pending)
    if skipped:
        logger.info("%d of %d runs are finished already", skipped, len(runs))
    env = dict(os.environ if env is None else env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: Dict[StudyRun, list] = {}  # run -> [process, log, start time, index of its command]
    done = 0
    while pending or running:
        while pending and len(running) < parallel:
            run = pending.pop(0)
            os.makedirs(run.out_dir, exist_ok=True)
            log_path = os.path.join(run.out_dir, "train.log")
            log = open(log_path, "w")
            process = subprocess.Popen(list(run.command), stdout=log, stderr=subprocess.STDOUT, env=env)
            running[run] = [process, log, time.perf_counter(), 0]
            logger.info("Training %s (log: %s)", "/".join(run.key), log_path)
        time.sleep(poll_s)
        for run, (process, log, start, index) in list(running.items()):
            if process.poll() is None:
                continue
            if process.returncode != 0:
                log.close()
                del running[run]
                for other in running.values():
                    other[0].kill()
                raise RuntimeError(f"{'/'.join(run.key)} failed (exit {process.returncode}) in command "
                                   f"{index + 1} of {len(run.commands)}; see {os.path.join(run.out_dir, 'train.log')}")
            if index + 1 < len(run.commands):
                log.flush()
                running[run][0] = subprocess.Popen(list(run.commands[index + 1]), stdout=log,
                                                   stderr=subprocess.STDOUT, env=env)
                running[run][3] = index + 1
                continue
            log.close()
            del running[run]
            seconds = round(time.perf_counter() - start, 1)
            with atomic_path(os.path.join(run.out_dir, SECONDS_FILE)) as tmp, open(tmp, "w") as f:
                json.dump({"seconds": seconds}, f)
            done += 1
            logger.info("%s finished in %.0f s (%d of %d trained now)", "/".join(run.key), seconds, done,
                        len(runs) - skipped)


def aggregate(values: Sequence[float]) -> Dict[str, float]:
    """Mean, min, max and count of ``values`` (one per seed)."""
    values = [float(v) for v in values]
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values), "n": len(values)}


def format_cell(summary: Mapping[str, float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean (min-max)``, or the value alone for one seed."""
    mean, low, high = (scale * summary[k] for k in ("mean", "min", "max"))
    if summary["n"] == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_text(path: str, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def grouped(runs: Sequence[StudyRun], by: int) -> Dict[Tuple[str, ...], List[StudyRun]]:
    """Runs grouped by their key without position ``by`` (e.g. all seeds of one method)."""
    groups: Dict[Tuple[str, ...], List[StudyRun]] = {}
    for run in runs:
        groups.setdefault(run.key[:by] + run.key[by + 1:], []).append(run)
    return groups


def summarize_metrics(metrics: Mapping, coarse: Sequence[str], fine: Sequence[str],
                      ks: Sequence[str] = ("20", "50", "100")) -> Dict[str, float]:
    """R, mR, Mean, HR, mHR @ each K of a ``metrics.json``, and the mean per-predicate R@K of the
    ``coarse`` and of the ``fine`` predicates (``coarse_mR@K``, ``fine_mR@K``)."""
    rows = metrics["metrics"]
    summary = {f"{key}@{k}": float(rows[f"{key}@K"][k]) for key in ("R", "mR", "Mean", "HR", "mHR") for k in ks}
    names = metrics["per_predicate"]["names"]
    for group, members in (("coarse", coarse), ("fine", fine)):
        for k in ks:
            recalls = [r for name, r in zip(names, metrics["per_predicate"]["mR"][k]) if name in members]
            summary[f"{group}_mR@{k}"] = sum(recalls) / len(recalls)
    return summary
