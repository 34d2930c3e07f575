"""Draw the HML appendix figures of a run and its evaluations.

    python tools/plot_hml.py --run-dir RUN_DIR --run "CE=a/metrics.json" --run "HML=b/metrics.json" \
        [--counts counts.json] --out OUT_DIR

- ``per_predicate_recall.png``: per-predicate R@100 of every ``--run LABEL=metrics.json``
  (one or more, in the given order), predicates by descending training frequency. The
  counts come from ``--counts`` ({name: count} JSON) or else from the stage reports
  of ``--run-dir``; predicate labels are coloured by the HML stage that learns them
  when ``--run-dir`` has stage reports.
- ``importance_per_layer.png``: mean Fisher and Omega per relation-predictor layer and
  stage, from ``RUN_DIR/stage<k>/stage_report.json``.

A figure whose inputs are absent is skipped (logged). The last line printed is a JSON
object {"per_predicate_recall": path or null, "importance_per_layer": path or null}.
Exit status 2 on unreadable or malformed inputs.
"""
import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Tuple

from hml_patch.plots import (
    load_json,
    load_metrics,
    load_stage_reports,
    plot_importance_per_layer,
    plot_per_predicate_recall,
    predicate_stages,
    training_counts,
)

logger = logging.getLogger("plot_hml")

RECALL_FILE = "per_predicate_recall.png"
IMPORTANCE_FILE = "importance_per_layer.png"


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", metavar="RUN_DIR", help="HML run folder holding stage<k>/stage_report.json")
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=METRICS_JSON",
                        help="an evaluated run's metrics.json and its legend label (repeat for more runs)")
    parser.add_argument("--counts", metavar="FILE", help="{predicate name: training count} JSON (default: "
                                                         "the stage reports' train_predicate_counts)")
    parser.add_argument("--out", required=True, metavar="OUT_DIR", help="folder the PNGs are written to")
    args = parser.parse_args(argv)
    if not args.run and not args.run_dir:
        parser.error("nothing to plot: give --run and/or --run-dir")
    return args


def parse_run(spec: str) -> Tuple[str, str]:
    """("LABEL", "PATH") from "LABEL=PATH" (the label is everything before the first '=')."""
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise ValueError(f"--run {spec!r}: expected LABEL=path/to/metrics.json")
    return label, path


def load_counts(path: str) -> Dict[str, float]:
    """A {predicate name: training count} JSON file."""
    counts = load_json(path)
    if not isinstance(counts, dict) or not all(isinstance(c, (int, float)) and not isinstance(c, bool)
                                               for c in counts.values()):
        raise ValueError(f"{path}: expected a JSON object {{predicate name: count}}")
    return counts


def draw(args: argparse.Namespace) -> Dict[str, Optional[str]]:
    """Draw the figures the arguments allow; {figure: path or None when skipped}."""
    runs: Dict[str, dict] = {}
    for spec in args.run:
        label, path = parse_run(spec)
        if label in runs:
            raise ValueError(f"--run label {label!r} given twice")
        runs[label] = load_metrics(path)
    reports = load_stage_reports(args.run_dir) if args.run_dir else []
    if args.run_dir and not reports:
        logger.warning("no stage<k>/stage_report.json under %s", args.run_dir)
    counts = load_counts(args.counts) if args.counts else (training_counts(reports) if reports else None)

    written: Dict[str, Optional[str]] = {"per_predicate_recall": None, "importance_per_layer": None}
    if not runs:
        logger.info("skipping %s: no --run given", RECALL_FILE)
    elif counts is None:
        logger.info("skipping %s: no training counts (give --counts or a --run-dir with stage reports)",
                    RECALL_FILE)
    else:
        written["per_predicate_recall"] = plot_per_predicate_recall(
            runs, counts, os.path.join(args.out, RECALL_FILE), stages=predicate_stages(reports) or None)
    if reports:
        written["importance_per_layer"] = plot_importance_per_layer(reports, os.path.join(args.out, IMPORTANCE_FILE))
    else:
        logger.info("skipping %s: no stage reports (give --run-dir)", IMPORTANCE_FILE)
    return written


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    try:
        written = draw(args)
    except (ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
