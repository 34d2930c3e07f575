"""Figures of the HML appendix, drawn from the JSON files the codebase writes.

- Per-predicate R@100 of one or more evaluated runs, predicates ordered by descending
  training frequency (appendix Fig. 2-4), from relation evaluations' ``metrics.json``.
- Mean parameter importance (Fisher and Omega) per relation-predictor layer and stage
  (appendix Fig. 5-7), from an HML run's ``stage<k>/stage_report.json`` files.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through
pyplot, so importing or calling this module leaves no global plotting state behind;
PNGs are written atomically.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from numbers import Real
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from maskrcnn_benchmark.utils.atomic_io import atomic_path

logger = logging.getLogger(__name__)

RECALL_K = "100"
IMPORTANCE_KINDS = ("fisher", "omega")
IMPORTANCE_TITLES = {"fisher": "Fisher information F", "omega": "Path-integral importance Omega"}
ROOT_MODULE_LABEL = "(root)"
DPI = 120
# A panel switches to a log y axis when its positive values span more than this ratio.
LOG_SCALE_RATIO = 1e3
# Predicate-label colours per HML stage, kept apart from the bar colours (C0, C1, ...).
STAGE_LABEL_COLOURS = ("black", "#7b3294", "#008837", "#a6611a", "#0571b0")
_STAGE_DIR = re.compile(r"^stage(\d+)$")


# ----------------------------------------------------------------------------- inputs

def load_json(path: str) -> Any:
    """A JSON file; invalid JSON raises ValueError naming the file."""
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error


def load_metrics(path: str) -> Dict[str, Any]:
    """A relation evaluation's ``metrics.json``, checked to hold the per-predicate R@100 list."""
    metrics = load_json(path)
    recall_per_predicate(metrics, source=path)
    return metrics


def recall_per_predicate(metrics: Mapping[str, Any], source: str = "metrics") -> Dict[str, float]:
    """{predicate name: R@100} in predicate id order (names exclude the background)."""
    try:
        names = metrics["per_predicate"]["names"]
        values = metrics["per_predicate"]["mR"][RECALL_K]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{source}: no per_predicate names and mR@{RECALL_K} list (missing {error})") from error
    if not isinstance(names, list) or not isinstance(values, list) or len(names) != len(values):
        raise ValueError(f"{source}: per_predicate names and mR@{RECALL_K} must be lists of the same length")
    return {str(name): float(value) for name, value in zip(names, values)}


def mean_recall(metrics: Mapping[str, Any]) -> Optional[float]:
    """The run's mR@100 scalar, None when the evaluation did not report it."""
    value = metrics.get("metrics", {}).get("mR@K", {}).get(RECALL_K)
    return None if value is None else float(value)


def untested_predicates(metrics: Mapping[str, Any]) -> List[str]:
    """Predicates without a test image (their R@100 is 0 by convention, not measured)."""
    per_predicate = metrics["per_predicate"]
    images = per_predicate.get("images_per_predicate")
    if images is None:
        return []
    return [name for name, count in zip(per_predicate["names"], images) if count == 0]


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def validate_stage_report(report: Any, source: str) -> None:
    """Raise ValueError naming ``source`` unless ``report`` has the fields the plots read."""
    if not isinstance(report, dict):
        raise ValueError(f"{source}: a stage report must be a JSON object")
    missing = [key for key in ("stage", "train_predicate_counts", "stage_predicates", "parameter_importance")
               if key not in report]
    if missing:
        raise ValueError(f"{source}: missing {', '.join(missing)}")
    stage = report["stage"]
    if not isinstance(stage, int) or isinstance(stage, bool) or stage < 1:
        raise ValueError(f"{source}: 'stage' must be an integer >= 1, got {stage!r}")
    counts = report["train_predicate_counts"]
    if not isinstance(counts, dict) or not all(_is_number(c) for c in counts.values()):
        raise ValueError(f"{source}: 'train_predicate_counts' must map predicate names to numbers")
    if not isinstance(report["stage_predicates"], list) or not all(
            isinstance(name, str) for name in report["stage_predicates"]):
        raise ValueError(f"{source}: 'stage_predicates' must be a list of predicate names")
    importance = report["parameter_importance"]
    if not isinstance(importance, dict):
        raise ValueError(f"{source}: 'parameter_importance' must map parameter names to entries")
    for name, entry in importance.items():
        if not isinstance(entry, dict) or not all(_is_number(entry.get(kind)) for kind in IMPORTANCE_KINDS):
            raise ValueError(f"{source}: parameter_importance[{name!r}] needs numbers 'fisher' and 'omega'")
        if "numel" in entry and not (isinstance(entry["numel"], int) and entry["numel"] > 0):
            raise ValueError(f"{source}: parameter_importance[{name!r}]['numel'] must be a positive integer")


def load_stage_reports(run_dir: str) -> List[Dict[str, Any]]:
    """The ``stage<k>/stage_report.json`` files of an HML run folder, sorted by stage.

    Folders without a report are ignored (a stage still training); a malformed report
    raises ValueError naming the file. Returns [] when no stage has a report yet.
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"HML run folder {run_dir} does not exist")
    by_stage: Dict[int, Dict[str, Any]] = {}
    for entry in sorted(os.listdir(run_dir)):
        match = _STAGE_DIR.match(entry)
        path = os.path.join(run_dir, entry, "stage_report.json")
        if match is None or not os.path.isfile(path):
            continue
        report = load_json(path)
        validate_stage_report(report, path)
        if report["stage"] != int(match.group(1)):
            raise ValueError(f"{path}: reports stage {report['stage']} but lies in folder {entry}")
        if report["stage"] in by_stage:
            raise ValueError(f"{path}: a second report for stage {report['stage']}")
        by_stage[report["stage"]] = report
    return [by_stage[stage] for stage in sorted(by_stage)]


def training_counts(stage_reports: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """Training-split predicate counts of an HML run (the first report's; a mismatch is logged)."""
    counts = dict(stage_reports[0]["train_predicate_counts"])
    for report in stage_reports[1:]:
        if dict(report["train_predicate_counts"]) != counts:
            logger.warning("stage %d reports other training counts than stage %d; using stage %d's",
                           report["stage"], stage_reports[0]["stage"], stage_reports[0]["stage"])
    return counts


def predicate_stages(stage_reports: Sequence[Mapping[str, Any]]) -> Dict[str, int]:
    """{predicate name: the stage that learns it} (the first stage listing it)."""
    stages: Dict[str, int] = {}
    for report in stage_reports:
        for name in report["stage_predicates"]:
            stages.setdefault(name, int(report["stage"]))
    return stages


# ----------------------------------------------------------------------------- derived quantities

def frequency_order(names: Sequence[str], counts: Mapping[str, float]) -> List[str]:
    """``names`` by descending training count.

    Ties, and names missing from ``counts`` (taken as 0), keep their order in ``names``,
    i.e. predicate id order for the evaluator's list (the sort is stable).
    """
    return sorted(names, key=lambda name: -counts.get(name, 0))


def module_of(param_name: str) -> str:
    """The module owning a parameter: its name without the last component.

    "context_layer.obj_ctx_rnn.weight_ih_l0" -> "context_layer.obj_ctx_rnn" (all weights
    and biases of an LSTM/GRU, every layer and direction, fall in the one module);
    a ``torch.nn.utils.parametrize`` name "m.parametrizations.weight.original" -> "m";
    a parameter of the root module -> "".
    """
    parts = param_name.split(".")
    if "parametrizations" in parts:
        parts = parts[:parts.index("parametrizations") + 1]
    return ".".join(parts[:-1])


def layer_importance(parameter_importance: Mapping[str, Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    """{module: {"fisher": mean, "omega": mean}} from per-parameter-tensor mean importances.

    A module's value averages its parameter tensors' means weighted by their element
    counts when every entry of the module has a "numel" field (the exact mean over the
    module's elements), else unweighted (each tensor counts once). Modules keep the
    order of their first parameter.
    """
    groups: Dict[str, List[Mapping[str, float]]] = {}
    for name, entry in parameter_importance.items():
        groups.setdefault(module_of(name), []).append(entry)
    layers: Dict[str, Dict[str, float]] = {}
    for module, entries in groups.items():
        weighted = all("numel" in entry for entry in entries)
        weights = np.array([float(entry["numel"]) if weighted else 1.0 for entry in entries])
        layers[module] = {kind: float(np.dot(weights, [float(entry[kind]) for entry in entries]) / weights.sum())
                          for kind in IMPORTANCE_KINDS}
    return layers


# ----------------------------------------------------------------------------- figures

def _save(figure: Figure, out_path: str) -> str:
    FigureCanvasAgg(figure)
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    logger.info("wrote %s", out_path)
    return out_path


def _stage_colour(stage: int) -> str:
    return STAGE_LABEL_COLOURS[(stage - 1) % len(STAGE_LABEL_COLOURS)]


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def per_predicate_recall_figure(runs: Mapping[str, Mapping[str, Any]], counts: Mapping[str, float],
                                stages: Optional[Mapping[str, int]] = None) -> Figure:
    """Grouped bars of per-predicate R@100, one bar per run, predicates by training frequency.

    ``runs``: {label: metrics.json content}, drawn in the given order; every run must
    evaluate the same predicates. ``counts``: {predicate name: training count} (other
    names are ignored). ``stages``: optional {predicate name: HML stage}, which colours
    the predicate labels. Predicates without a test image in every run are starred.
    """
    if not runs:
        raise ValueError("no run to plot")
    recalls = {label: recall_per_predicate(metrics, source=f"run {label!r}") for label, metrics in runs.items()}
    first_label, first = next(iter(recalls.items()))
    for label, recall in recalls.items():
        if set(recall) != set(first):
            raise ValueError(f"runs {first_label!r} and {label!r} evaluate different predicates")
    unknown = [name for name in first if name not in counts]
    if len(unknown) == len(first):
        raise ValueError("the training counts name none of the evaluated predicates")
    if unknown:
        logger.warning("no training count for %s; placed last as count 0", ", ".join(unknown))
    order = frequency_order(list(first), counts)
    untested = set.intersection(*(set(untested_predicates(metrics)) for metrics in runs.values()))

    n, n_runs = len(order), len(runs)
    figure = Figure(figsize=(max(6.0, 1.5 + n * (0.22 + 0.1 * n_runs)), 5.0), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(n)
    width = 0.8 / n_runs
    for i, (label, recall) in enumerate(recalls.items()):
        axes.bar(x + (i - (n_runs - 1) / 2) * width, [100 * recall[name] for name in order], width,
                 color=f"C{i}", label=f"{label} (mR@{RECALL_K} = {_percent(mean_recall(runs[label]))})")
    axes.set_xticks(x, [f"{name}*" if name in untested else name for name in order],
                    rotation=60, ha="right", rotation_mode="anchor")
    axes.set_xlim(-0.6, n - 0.4)
    axes.set_ylim(0, 100)
    axes.set_ylabel(f"R@{RECALL_K} (%)")
    note = " (* = no test instance, R@100 0 by convention)" if untested else ""
    axes.set_xlabel(f"predicates by descending training frequency{note}")
    axes.set_title(f"Per-predicate R@{RECALL_K}")
    axes.grid(axis="y", alpha=0.3)
    figure.legend(loc="outside upper left", ncols=min(n_runs, 4))
    if stages:
        for tick, name in zip(axes.get_xticklabels(), order):
            if name in stages:
                tick.set_color(_stage_colour(stages[name]))
        handles = [Line2D([], [], marker="s", linestyle="", color=_stage_colour(stage), label=f"stage {stage}")
                   for stage in sorted(set(stages.values()))]
        figure.legend(handles=handles, loc="outside upper right", ncols=len(handles),
                      title="predicate label colour: learned in")
    return figure


def plot_per_predicate_recall(runs: Dict[str, dict], counts: Mapping[str, int], out_path: str,
                              stages: Optional[Mapping[str, int]] = None) -> str:
    """Write the per-predicate R@100 figure (see `per_predicate_recall_figure`) as PNG; returns out_path."""
    return _save(per_predicate_recall_figure(runs, counts, stages), out_path)


def importance_per_layer_figure(stage_reports: Sequence[Mapping[str, Any]]) -> Figure:
    """Mean Fisher and Omega per relation-predictor layer (bar group) and stage (bar).

    Layers are modules (`module_of`), averaged as `layer_importance` says, in the order
    they first appear in the reports; a layer absent from a stage has no bar there. A
    panel uses a log y axis when its positive values span more than LOG_SCALE_RATIO.
    """
    if not stage_reports:
        raise ValueError("no stage report to plot")
    for i, report in enumerate(stage_reports):
        validate_stage_report(report, f"stage report #{i + 1}")
    per_stage = [(int(report["stage"]), layer_importance(report["parameter_importance"])) for report in stage_reports]
    modules: List[str] = []
    for _, layers in per_stage:
        modules.extend(module for module in layers if module not in modules)
    if not modules:
        raise ValueError("the stage reports hold no parameter importance")

    n, n_stages = len(modules), len(per_stage)
    figure = Figure(figsize=(max(6.0, 1.5 + n * (0.3 + 0.15 * n_stages)), 8.0), layout="constrained")
    panels = figure.subplots(2, 1, sharex=True)
    x = np.arange(n)
    width = 0.8 / n_stages
    for axes, kind in zip(panels, IMPORTANCE_KINDS):
        heights_all = []
        for i, (stage, layers) in enumerate(per_stage):
            heights = [layers[module][kind] if module in layers else math.nan for module in modules]
            heights_all.extend(heights)
            axes.bar(x + (i - (n_stages - 1) / 2) * width, heights, width, color=f"C{i}",
                     label=f"after stage {stage}")
        positive = [h for h in heights_all if h > 0]
        if positive and max(positive) > LOG_SCALE_RATIO * min(positive):
            axes.set_yscale("log")
        axes.set_title(IMPORTANCE_TITLES[kind])
        axes.set_ylabel(f"mean {kind}")
        axes.grid(axis="y", alpha=0.3)
    figure.legend(*panels[0].get_legend_handles_labels(), loc="outside lower center", ncols=n_stages)
    panels[1].set_xticks(x, [module or ROOT_MODULE_LABEL for module in modules],
                         rotation=45, ha="right", rotation_mode="anchor")
    panels[1].set_xlim(-0.6, n - 0.4)
    panels[1].set_xlabel("relation-predictor layer (module)")
    figure.suptitle("Mean parameter importance per layer and stage")
    return figure


def plot_importance_per_layer(stage_reports: Sequence[dict], out_path: str) -> str:
    """Write the importance-per-layer figure (see `importance_per_layer_figure`) as PNG; returns out_path."""
    return _save(importance_per_layer_figure(stage_reports), out_path)
