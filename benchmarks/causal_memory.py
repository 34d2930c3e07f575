"""Peak CPU memory of one SGDet TDE test step of Causal-MOTIFS-SUM, with and without the joint matrix.

What is measured: the relation predictor's forward (``CausalAnalysisPredictor`` in eval, EFFECT_TYPE
TDE: the factual pass, the counterfactual pass and the effect) for one image with ``--detections``
SGDet boxes and all their ordered pairs (80 -> 6,320, the yaml's DETECTIONS_PER_IMG with
REQUIRE_OVERLAP False), at the benchmark's dimensions (hidden 512, pooling = ROI = union features
4096, GloVe 200, 151 classes, 51 predicates), under ``no_grad``, on one CPU thread. The backbone, RPN,
box head and the feature extractors are not part of it: the union features (``[pairs, 4096]``) and
ROI features are given inputs, allocated before the measurement. Weights are random and the moving
averages set to positive random values (values do not change the memory).

Two variants, each in its own process:
- ``bilinear``: this codebase's frequency lookup by probability (a bilinear form in row blocks);
- ``joint``: the benchmark's lookup, which forms the ``[pairs, 151 * 151]`` joint matrix of the
  subject and object class distributions and multiplies it by the table. Our TDE looks the
  frequency term up once (the benchmark twice, with the same peak: the first matrix is freed).

Two numbers per variant: ``peak_mb``, the peak of the running sum of the allocations and frees
that torch's CPU memory profiler records during the step (``torch.profiler``,
``profile_memory=True``), above the level at its start; and ``rss_peak_mb``, the growth of the
process's resident-set high-water mark over the step (Linux ``/proc/self/status`` VmHWM, reset
just before the step), which also sees allocator and library overheads. One warm-up step runs
first. The last output line is one JSON object.

    python benchmarks/causal_memory.py [--detections 80] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Dict, List, Tuple

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from maskrcnn_benchmark.modeling.roi_heads.relation_head.causal_predictor import CausalAnalysisPredictor  # noqa: E402
from maskrcnn_benchmark.modeling.roi_heads.relation_head.freq_bias import FrequencyBias  # noqa: E402
from maskrcnn_benchmark.structures.bounding_box import BoxList  # noqa: E402

NUM_OBJ, NUM_REL, HIDDEN, POOLING, EMBED = 151, 51, 512, 4096, 200
IMAGE_SIZE = (1024, 768)
VARIANTS = ("bilinear", "joint")
MB = 2.0 ** 20


def joint_matrix_lookup(self: FrequencyBias, pair_prob: torch.Tensor) -> torch.Tensor:
    """The benchmark's ``index_with_probability``: the [R, C * C] outer products times the table."""
    joint = pair_prob[:, :, 0].unsqueeze(2) * pair_prob[:, :, 1].unsqueeze(1)
    return joint.reshape(pair_prob.shape[0], -1) @ self.obj_baseline.weight


def sgdet_inputs(detections: int, seed: int = 0) -> Tuple[List[BoxList], List[torch.Tensor], torch.Tensor,
                                                          torch.Tensor]:
    """One image's detections (boxes, per-class boxes, detector logits), all ordered pairs, features."""
    gen = torch.Generator().manual_seed(seed)
    width, height = IMAGE_SIZE
    xy = torch.rand(detections, 2, generator=gen) * torch.tensor([width * 0.7, height * 0.7])
    boxes = torch.cat([xy, xy + 16 + torch.rand(detections, 2, generator=gen) * 200], dim=1)
    proposal = BoxList(boxes, IMAGE_SIZE)
    proposal.add_field("predict_logits", torch.randn(detections, NUM_OBJ, generator=gen))
    proposal.add_field("boxes_per_cls", boxes[:, None] + torch.rand(detections, NUM_OBJ, 4, generator=gen) * 4)
    grid = torch.cartesian_prod(torch.arange(detections), torch.arange(detections))
    pairs = grid[grid[:, 0] != grid[:, 1]]
    roi = torch.rand(detections, POOLING, generator=gen)
    union = torch.rand(pairs.shape[0], POOLING, generator=gen)
    return [proposal], [pairs], roi, union


def build_predictor() -> CausalAnalysisPredictor:
    torch.manual_seed(0)
    predictor = CausalAnalysisPredictor(torch.randn(NUM_OBJ + 1, EMBED), NUM_REL, POOLING,
                                        torch.randn(NUM_OBJ, NUM_OBJ, NUM_REL).log_softmax(-1), hidden_dim=HIDDEN,
                                        pooling_dim=POOLING, union_dim=POOLING, context_layer="motifs",
                                        fusion_type="sum", spatial_for_vision=True, effect_analysis=True,
                                        effect_type="TDE", mode="sgdet", nms_thresh=0.5).eval()
    with torch.no_grad():
        for name, buffer in predictor.named_buffers():
            if "untreated" in name or "avg_post_ctx" in name:
                buffer.copy_(torch.rand(buffer.shape))
    return predictor


def profiled_peak_bytes(step) -> int:
    """Peak of the running allocation sum that the CPU memory profiler records during ``step()``."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    running = peak = 0
    for _, nbytes in records:
        running += nbytes
        peak = max(peak, running)
    return peak


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_growth_bytes(step) -> int:
    """Growth of the resident-set high-water mark over ``step()`` (the mark is reset first)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _status_kb("VmRSS")
    step()
    return (_status_kb("VmHWM") - start) * 1024


def measure(variant: str, detections: int) -> Dict[str, float]:
    """Both peaks of one variant, in this process."""
    if variant == "joint":
        FrequencyBias.index_with_probability = joint_matrix_lookup
    predictor = build_predictor()
    proposals, pairs, roi, union = sgdet_inputs(detections)

    def step() -> None:
        with torch.no_grad():
            predictor(proposals, pairs, None, None, roi, union)

    step()  # warm-up
    return {"peak_mb": profiled_peak_bytes(step) / MB, "rss_peak_mb": rss_growth_bytes(step) / MB,
            "inputs_mb": (roi.numel() + union.numel()) * 4 / MB, "pairs": pairs[0].shape[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(measure(args.variant, args.detections)))
        return
    results = {}
    for variant in VARIANTS:
        child = subprocess.run([sys.executable, os.path.abspath(__file__), "--variant", variant,
                                "--detections", str(args.detections), "--threads", str(args.threads)],
                               capture_output=True, text=True, check=True)
        results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
    pairs = results["bilinear"]["pairs"]
    for variant in VARIANTS:
        print(f"{variant:>8}: peak {results[variant]['peak_mb']:8.1f} MB (profiler), "
              f"resident-set growth {results[variant]['rss_peak_mb']:8.1f} MB")
    print(json.dumps({
        "benchmark": "causal_memory", "step": "CausalAnalysisPredictor SGDet TDE test forward (motifs, sum, "
        "SPATIAL_FOR_VISION), no_grad, CPU", "detections": args.detections, "pairs": pairs,
        "dims": {"hidden": HIDDEN, "pooling": POOLING, "embed": EMBED, "obj_classes": NUM_OBJ,
                 "rel_classes": NUM_REL},
        "peak_mb": {v: round(results[v]["peak_mb"], 1) for v in VARIANTS},
        "rss_peak_mb": {v: round(results[v]["rss_peak_mb"], 1) for v in VARIANTS},
        "inputs_mb": round(results["bilinear"]["inputs_mb"], 1),
        "joint_matrix_mb": round(pairs * NUM_OBJ * NUM_OBJ * 4 / MB, 1), "threads": args.threads}))


if __name__ == "__main__":
    main()
