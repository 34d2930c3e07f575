"""Train-step cost of each training framework relative to the plain relation step (same model, batch
and dims, CPU).

Frameworks (JSON key: what is attached):
- ``cb_ce``: ClassBalancedCE; ``if_ce``: InverseFrequencyCE (class weights only);
- ``lskd_iterative``: LSKD iterative while distilling: ``LSKD.REFRESH_PERIOD 1`` with ``SOLVER.MAX_ITER 2``
  takes the snapshot after one untimed prime step and never again (the framework refreshes only
  before MAX_ITER), so every timed step runs the snapshot teacher without paying a refresh (one per
  epoch in a real run);
- ``lskd_synchronous``: LSKD synchronous with ``LSKD.WARMUP_ITERS 0`` (the auxiliary head and the
  soft targets from the first step);
- ``hierarchical`` / ``hierarchical_factorised``: HierarchicalLoss, marginal / factorised form, on the
  dataset's tree (VG150 CogTree at the full dims, the synthetic world's tree at the synthetic dims);
- ``ebm``: EBM with every ``EBM.*`` key at its default (the release's: 20 SGLD steps, 512-wide energy model);
- ``hml``: HML stage 2 as benchmarks/hml_overhead.py sets it up (a short stage 1 first, the teacher
  cache warm: the steady state).

Every framework but HML is built through the public interface: a config naming it in
``MODEL.ROI_RELATION_HEAD.FRAMEWORKS``, ``build_frameworks`` and ``attach_frameworks`` before the
optimizer, its ``train_hooks()`` in every step (benchmarks/framework_variants.py). Each framework
runs side by side with one plain model in its own segment (A B A B ..., warm-up excluded): the
plain model is built once and stays, the framework's model is built, timed and dropped, so at most
two models are alive (nine X-101 models would not fit in memory). ``<key>_ratio`` is the median step
time over the same segment's median plain step; ``paired_ratio`` and ``cpu_ratio`` are cross-checks.

The default runs at the synthetic dims (configs/synthetic_vg/relation_R_18_FPN_predcls.yaml at its
training size 256x192, batch 4: about 3 minutes on a 2-core machine); ``--full`` at the full MOTIFS
dims of hml_overhead.py (X-101-32x8d-FPN, 427x320, batch 1: about 12 minutes with the default 4 steps).
The last output line is one JSON object: <key>_ratio for each framework, then per framework its
timings, phases, loss terms and checks.

    python benchmarks/framework_overhead.py [--full] [--steps N] [--only ebm,hml] [--threads 1] [KEY VALUE ...]
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
from typing import Any, Dict, List, Optional, Sequence

import torch

from framework_variants import (Bench, Built, Dims, Spec, compare, full_dims, phase_medians, small_dims,
                                trainable_params)

KEYS = ("cb_ce", "if_ce", "lskd_iterative", "lskd_synchronous", "hierarchical", "hierarchical_factorised",
        "ebm", "hml")


def specs(dims: Dims) -> List[Spec]:
    """The frameworks, in ``KEYS`` order."""
    return [
        Spec("cb_ce", "ClassBalancedCE"),
        Spec("if_ce", "InverseFrequencyCE"),
        Spec("lskd_iterative", "LSKD", ("LSKD.STRATEGY", "iterative", "LSKD.REFRESH_PERIOD", 1,
                                        "SOLVER.MAX_ITER", 2), prime_steps=1),
        Spec("lskd_synchronous", "LSKD", ("LSKD.STRATEGY", "synchronous", "LSKD.WARMUP_ITERS", 0)),
        Spec("hierarchical", "HierarchicalLoss", ("HIER.TREE", dims.hier_tree, "HIER.FORM", "marginal")),
        Spec("hierarchical_factorised", "HierarchicalLoss", ("HIER.TREE", dims.hier_tree, "HIER.FORM", "factorised")),
        Spec("ebm", "EBM"),
        Spec("hml", "HML", hml_stage2=True),
    ]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full MOTIFS dims (X-101-FPN, 320 px, batch 1)")
    parser.add_argument("--config", default="", help="another config for the dims")
    parser.add_argument("--predictor", default="MotifPredictor")
    parser.add_argument("--min-size", type=int, default=0, help="short image side (default 192; --full 320)")
    parser.add_argument("--batch", type=int, default=0, help="images per step (default 4; --full 1)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per segment (default 10; --full 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds at the start of each segment")
    parser.add_argument("--stage1-steps", type=int, default=2, help="HML stage-1 steps before stage 2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(KEYS)}")
    parser.add_argument("--boxes", type=int, default=12, help="ground-truth boxes per image")
    parser.add_argument("--rels", type=int, default=6, help="ground-truth relations per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every variant: KEY VALUE ...")
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.only.split(","))) - set(KEYS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; known: {', '.join(KEYS)}")
    return args


def dims_of(args: argparse.Namespace) -> Dims:
    if args.full:
        return full_dims(args.min_size or 320, args.batch or 1, *([args.config] if args.config else []))
    return small_dims(args.min_size or 192, args.batch or 4, *([args.config] if args.config else []))


def checks(built: Built) -> Dict[str, Any]:
    """What shows the framework did its work in the timed steps."""
    out: Dict[str, Any] = {}
    for framework in built.frameworks:
        if hasattr(framework, "distilling"):  # LSKD: past its warm-up / after a snapshot
            out["distilling"] = bool(framework.distilling(framework.progress.iteration))
        if built.spec.framework == "EBM":
            out["sgld_iters"] = framework.settings.sampler.iters
    return out


def run(args: argparse.Namespace) -> Dict[str, Any]:
    torch.set_num_threads(args.threads)
    dims = dims_of(args)
    steps = args.steps or (4 if args.full else 10)
    selected = [spec for spec in specs(dims) if not args.only or spec.key in args.only.split(",")]
    bench = Bench(dims, args.predictor, args.opts, args.boxes, args.rels, args.seed, stage1_steps=args.stage1_steps)
    results: Dict[str, Any] = {}
    with bench.glove():
        baseline = bench.variant(Spec("baseline"))
        for spec in selected:
            built = bench.variant(spec)
            start = len(baseline.variant.times)
            bench.alternate([baseline, built], args.warmup, steps)
            plain, timed = baseline.variant.times[start:], built.variant.times
            results[spec.key] = {
                "framework": spec.framework, "overrides": [str(v) for v in spec.overrides],
                **compare(plain, timed, spec.key),
                "trainable_params": trainable_params(built.variant), "loss_terms": built.variant.loss_terms,
                "phases": {"baseline": phase_medians(plain), spec.key: phase_medians(timed)},
                "step_s": [round(t["total"], 4) for t in timed], **checks(built)}
            del built
            gc.collect()
    ratios = {f"{key}_ratio": results[key]["ratio"] for key in results}
    return {**ratios, **bench.describe(), "dims": dims.name, "steps": steps, "warmup": args.warmup,
            "threads": torch.get_num_threads(), "baseline_trainable_params": trainable_params(baseline.variant),
            "baseline_loss_terms": baseline.variant.loss_terms, "frameworks": results}


def summary_lines(result: Dict[str, Any]) -> List[str]:
    width, height = result["image_size"]
    lines = [(f"{result['config']} {result['predictor']} PredCls {width}x{height} batch {result['batch']}, "
              f"{result['threads']} threads, median of {result['steps']} steps per segment"),
             "framework                 plain_s  framework_s   ratio  paired  cpu_ratio"]
    for key, r in result["frameworks"].items():
        lines.append(f"{key:<24s} {r['baseline_s']:>8.3f} {r[key + '_s']:>12.3f} {r['ratio']:>7.3f} "
                     f"{r['paired_ratio']:>7.3f} {r['cpu_ratio']:>10.3f}")
    return lines


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    print("\n".join(summary_lines(result)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
