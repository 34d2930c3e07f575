"""The benchmark's evaluation log lines, and metrics.json."""
from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Sequence

from maskrcnn_benchmark.utils.atomic_io import atomic_path

_RULE = "=" * 100
_DETAILS_OPEN = "-" * 23 + " Details " + "-" * 24
_DETAILS_CLOSE = "-" * 56

# (metric key, short name, type text); the benchmark's rows first, in its order.
_ROWS = (
    ("R@K", "R", "Recall(Main)"),
    ("ngR@K", "ng-R", "No Graph Constraint Recall(Main)"),
    ("zR@K", "zR", "Zero Shot Recall"),
    ("ng-zR@K", "ng-zR", "No Graph Constraint Zero Shot Recall"),
    ("mR@K", "mR", "Mean Recall"),
    ("ng-mR@K", "ng-mR", "No Graph Constraint Mean Recall"),
    ("A@K", "A", "TopK Accuracy"),
    ("Mean@K", "Mean", "Mean of R and mR (HML)"),
    ("F@K", "F", "Harmonic Mean of R and mR"),
    ("mR-head@K", "mR-head", "Mean Recall of the most frequent third of predicates"),
    ("mR-body@K", "mR-body", "Mean Recall of the middle third of predicates"),
    ("mR-tail@K", "mR-tail", "Mean Recall of the least frequent third of predicates"),
    ("HR@K", "HR", "Hierarchical Recall (a child of a coarse GT counts)"),
    ("mHR@K", "mHR", "Mean Hierarchical Recall"),
    ("gHR@K", "gHR", "Graded Hierarchical Recall"),
    ("TOR_p@K", "TOR", "Pair Top-Overlap Ratio"),
    ("TOR_p+@K", "TOR+", "Pair Top-Overlap Ratio, refinements credited"),
    ("POR_p@K", "POR", "Pair Point-Overlap Ratio"),
    ("mTOR_p@K", "mTOR", "Mean Pair Top-Overlap Ratio"),
    ("mTOR_p+@K", "mTOR+", "Mean Pair Top-Overlap Ratio, refinements credited"),
    ("mPOR_p@K", "mPOR", "Mean Pair Point-Overlap Ratio"),
)
_DETAIL_LISTS = {"mR@K": "mR", "ng-mR@K": "ng-mR"}


def _value(x: Optional[float]) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _row(short: str, values: Dict[str, Optional[float]], mode: str, kind: str) -> str:
    cells = "".join(f"{short:>5} @ {k}: {_value(v)}; " for k, v in values.items())
    return f"SGG eval: {cells} for mode={mode}, type={kind}."


def log_lines(result: Dict[str, object], predicate_names: Sequence[str]) -> List[str]:
    """The benchmark's "SGG eval: ..." block (detection line, one row per metric, per-predicate
    R@100 details after mR and ng-mR), then this evaluator's extra rows.

    Rows without a value anywhere (zero-shot without a list, A@K in SGDet) are left out.
    """
    mode = result["protocol"]["mode"]
    lines = [_RULE]
    detection = result.get("detection")
    if detection is not None:
        lines += [f"Detection evaluation mAp={detection['mAP50']:.4f}", _RULE]
    metrics = result["metrics"]
    for key, short, kind in _ROWS:
        values = metrics.get(key)
        if values is None or all(v is None for v in values.values()):
            continue
        lines.append(_row(short, values, mode, kind))
        if key in _DETAIL_LISTS:
            recalls = result["per_predicate"][_DETAIL_LISTS[key]]["100"]
            lines += [_DETAILS_OPEN, "".join(f"({n}:{r:.4f}) " for n, r in zip(predicate_names, recalls)),
                      _DETAILS_CLOSE]
    hierarchy = result.get("hierarchy")
    if hierarchy is not None:
        lines += _hierarchy_lines(hierarchy)
    lines.append(_RULE)
    return lines


def _hierarchy_lines(hierarchy: Dict[str, object]) -> List[str]:
    """gHR's weights, then the coarse/fine confusion at K = 100 (shares of the matched GT of each row)."""
    weights = hierarchy["graded_weights"]
    buckets = hierarchy["buckets"]
    confusion = hierarchy["confusion"]["100"]
    lines = [f"Hierarchy ({hierarchy['tree']}): gHR weights coarsen={weights['coarsen']}, "
             f"sibling={weights['sibling']}",
             "Confusion @ 100 (GT -> top prediction of its first matched pair, shares): "
             + " ".join(f"{name:>12}" for name in buckets) + f" {'matched':>8}"]
    rows = [(kind, confusion[kind]) for kind in ("coarse_annotated", "fine_annotated")]
    rows += [(f"parent {name}", row) for name, row in confusion["per_parent"].items()]
    for label, row in rows:
        lines.append(f"  {label:<24}" + " ".join(f"{_value(row['shares'][name]):>12}" for name in buckets)
                     + f" {int(row['matched']):>8}")
    return lines


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_metrics_json(result: Dict[str, object], path: str) -> None:
    """Write ``result`` atomically as JSON (non-finite numbers as null)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(_json_safe(result), f, indent=1)
        f.write("\n")
