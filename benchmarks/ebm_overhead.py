"""Train-step cost of MOTIFS + EBM relative to the plain MOTIFS step (same model, batch and dims, CPU).

At two dims, each in one run: the full MOTIFS dims (configs/e2e_relation_X_101_32_8_FPN_1x.yaml,
as benchmarks/hml_overhead.py: 427x320, batch 1) and the synthetic dims
(configs/synthetic_vg/relation_R_18_FPN_predcls.yaml at its training size 256x192, batch 4). Two
identical relation models (PredCls, random frozen detector, random statistics and word vectors:
values do not change the cost) get the same synthetic batch with ground-truth boxes and relations;
one has the "EBM" framework attached through ``FRAMEWORKS ['EBM']`` / ``build_frameworks`` /
``attach_frameworks`` with every ``EBM.*`` key at its default, the release's: 20 SGLD steps
(``EBM.SAMPLER.ITERS``), LR 1.0, 512-wide energy model. The step is the one of ``do_train``
(benchmarks/framework_variants.py); the variants alternate (A B A B ...), warm-up excluded, medians
over ``--steps`` (full dims) and ``--small-steps`` (synthetic dims).

Breakdown of the EBM step, from inline timers around the framework's own calls (nothing is copied):
- ``ebm_losses``: the framework's ``relation_losses`` (graphs, sampling, the two energies, the loss);
- ``sgld_sampling``: ``SGLDSampler.sample`` (ITERS steps); inside it ``sgld_energy_forward`` (the
  energy model's forwards on the probe graphs), ``sgld_state_gradient`` (``state_gradients`` less
  those forwards: the backward to the states) and ``sgld_update`` (noise, clamp, renormalisation);
- ``energy_forward_pos_neg``: the energy model's forwards of the positive and the sampled graph;
- ``graph_build_and_loss``: the rest of ``ebm_losses``;
- ``energy_backward``: inside the step's backward, from the first gradient reaching an energy to
  the last one leaving the energy model (tensor hooks); ``backward_extra``: the whole backward's
  median difference from the plain step (also the sampling chain and the extra box-feature gradient);
- ``energy_grad_clip`` and ``energy_log``: the framework's hooks (``SeparateGradClip``, ``EnergyLog``);
- ``optimizer_extra``: the optimizer phase's difference: there is no second optimiser, the energy
  model's tensors are in the run's SGD (README "EBM"), so its step is that difference.

Memory (``memory``): bytes the energy model keeps for its backward (``saved_tensors_hooks``, unique
storages, plus its output; inputs and parameters not counted) for ``--mem-nodes`` detections per
image (80: 6,320 ordered pairs, the sampled graph) and the GT graph (``--boxes`` / ``--rels``), at the
full dims' energy model, with the framework's edge-list layout and with the release's dense
N_tot x N_tot x EDGE_DIM layout (EBM.md 2.4: the same modules, the EGNN's edge states, node-to-edge
messages and edge GRU on every cell of the batch's grid). Measured at small sizes and extrapolated
with a least-squares fit linear in nodes, pairs, images and (dense) cells, which is exact (residual
reported), and checked against a direct measurement of one ``--mem-nodes`` image's sampled graph in
both layouts. ``peak`` = positive + sampled graph (both are live until the backward; the sampling
steps' graphs are freed one by one and none is larger); for one image and for ``--mem-images``.

The last output line is one JSON object: ratio_full, ratio_small, full / small (timings, phases,
breakdown, step_s), memory, ...

    python benchmarks/ebm_overhead.py [--steps 8] [--small-steps 10] [--threads 1] [--min-size 320] [KEY VALUE ...]

Defaults take about 4 minutes on a 2-core machine (1 thread, as hml_overhead.py explains); KEY VALUE
overrides apply at both dims (e.g. ``EBM.SAMPLER.ITERS 10``).
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from framework_variants import (FULL_CONFIG, SMALL_CONFIG, Bench, Built, Dims, Spec, compare, full_dims,
                                phase_medians, small_dims, trainable_params)
from maskrcnn_benchmark.engine.trainer import TrainHook
from training_frameworks.ebm import EBM, EBMSettings, EnergyModel, GraphBatch
from training_frameworks.ebm.layers import DEGREE_EPS, EdgeGNN

BASELINE = Spec("baseline")
EBM_SPEC = Spec("ebm", "EBM")
PARTS = ("ebm_losses", "sgld_sampling", "sgld_energy_forward", "sgld_state_gradient", "sgld_update",
         "energy_forward_pos_neg", "graph_build_and_loss", "energy_backward", "backward_extra",
         "energy_grad_clip", "energy_log", "optimizer_extra", "forward_extra_other")
MB = 2 ** 20


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-config", default=FULL_CONFIG, help="config of the full dims")
    parser.add_argument("--small-config", default=SMALL_CONFIG, help="config of the synthetic dims")
    parser.add_argument("--predictor", default="MotifPredictor")
    parser.add_argument("--min-size", type=int, default=320, help="full dims: short image side (long = 4/3)")
    parser.add_argument("--batch", type=int, default=1, help="full dims: images per step")
    parser.add_argument("--small-min-size", type=int, default=192, help="synthetic dims: short image side")
    parser.add_argument("--small-batch", type=int, default=4, help="synthetic dims: images per step")
    parser.add_argument("--steps", type=int, default=8, help="full dims: timed steps per variant")
    parser.add_argument("--small-steps", type=int, default=10, help="synthetic dims: timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant before the timed ones")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--boxes", type=int, default=12, help="ground-truth boxes per image")
    parser.add_argument("--rels", type=int, default=6, help="ground-truth relations per image")
    parser.add_argument("--mem-nodes", type=int, default=80, help="detections per image of the memory estimate")
    parser.add_argument("--mem-images", type=int, default=4,
                        help="images of the batch estimate (the release's per-GPU batch: 16 on 4 GPUs)")
    parser.add_argument("--no-memory-check", action="store_true",
                        help="skip the direct measurement of one --mem-nodes image (the fit alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for both dims: KEY VALUE ...")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------ inline timers
class EBMTimers(TrainHook):
    """Times the EBM framework's parts in the shared ``PhaseTimer`` (see the module docstring).

    ``wrap`` (before attach) replaces the framework's ``relation_losses`` and its sampler's ``sample``
    / ``state_gradients`` with timed calls; ``watch`` (after attach) hooks the energy model's forward
    and, outside sampling, the gradients of its outputs and inputs. As the last hook of the step it
    writes the backward span after the backward."""

    def __init__(self, timer) -> None:
        self.timer = timer
        self.sampling = False
        self.forward_start = 0.0
        self.backward_marks: List[float] = []
        self.backward_ends: List[float] = []
        self.pairs: List[Tuple[int, int]] = []

    def wrap(self, frameworks: Sequence[Any]) -> None:
        framework, = [f for f in frameworks if isinstance(f, EBM)]
        sampler = framework.sampler
        relation_losses, sample, state_gradients = framework.relation_losses, sampler.sample, sampler.state_gradients

        def timed_losses(batch, losses):
            with self.timer("ebm_losses"):
                return relation_losses(batch, losses)

        def timed_sample(*args, **kwargs):
            self.sampling = True
            try:
                with self.timer("sgld_sampling"):
                    return sample(*args, **kwargs)
            finally:
                self.sampling = False

        framework.relation_losses = timed_losses
        sampler.sample = timed_sample
        sampler.state_gradients = self.timer.wrap("sgld_state_gradients", state_gradients)

    def watch(self, energy_model: torch.nn.Module) -> None:
        energy_model.register_forward_pre_hook(self._pre)
        energy_model.register_forward_hook(self._post)

    def _pre(self, module, inputs) -> None:
        self.forward_start = time.perf_counter()

    def _post(self, module, inputs, output) -> None:
        elapsed = time.perf_counter() - self.forward_start
        self.timer.current["sgld_energy_forward" if self.sampling else "energy_forward_pos_neg"] += elapsed
        if self.sampling or not torch.is_grad_enabled():
            return
        graph: GraphBatch = inputs[0]
        self.pairs.append((graph.edge_states.shape[0], graph.node_states.shape[0]))
        if output.requires_grad:
            output.register_hook(self._mark_start)
        for tensor in (graph.edge_states, graph.node_states, graph.image_features):
            if tensor.requires_grad:
                tensor.register_hook(self._mark_end)

    def _mark_start(self, grad: torch.Tensor) -> None:
        self.backward_marks.append(time.perf_counter())

    def _mark_end(self, grad: torch.Tensor) -> None:
        self.backward_ends.append(time.perf_counter())

    def after_backward(self, iteration: int, model: torch.nn.Module) -> None:
        if self.backward_marks and self.backward_ends:
            self.timer.current["energy_backward"] += max(self.backward_ends) - min(self.backward_marks)
        self.backward_marks, self.backward_ends = [], []


def ebm_breakdown(baseline: Built, ebm: Built) -> Dict[str, float]:
    b, e = baseline.variant, ebm.variant
    part = e.median
    sampling, gradients = part("sgld_sampling"), part("sgld_state_gradients")
    breakdown = {
        "ebm_losses": part("ebm_losses"), "sgld_sampling": sampling,
        "sgld_energy_forward": part("sgld_energy_forward"),
        "sgld_state_gradient": gradients - part("sgld_energy_forward"), "sgld_update": sampling - gradients,
        "energy_forward_pos_neg": part("energy_forward_pos_neg"),
        "graph_build_and_loss": part("ebm_losses") - sampling - part("energy_forward_pos_neg"),
        "energy_backward": part("energy_backward"),
        "backward_extra": part("backward") - b.median("backward"),
        "energy_grad_clip": part("hook:SeparateGradClip"), "energy_log": part("hook:EnergyLog"),
        "optimizer_extra": part("optimizer") - b.median("optimizer"),
        "forward_extra_other": part("forward") - b.median("forward") - part("ebm_losses"),
    }
    return {name: round(breakdown[name], 4) for name in PARTS}


def measure_dims(args: argparse.Namespace, dims: Dims, steps: int) -> Dict[str, Any]:
    bench = Bench(dims, args.predictor, args.opts, args.boxes, args.rels, args.seed)
    timers = EBMTimers(bench.timer)
    with bench.glove():
        baseline = bench.variant(BASELINE)
        ebm = bench.variant(EBM_SPEC, before_attach=timers.wrap)
    framework, = ebm.frameworks
    timers.watch(framework.energy_model)
    ebm.variant.hooks.append(timers)
    bench.alternate([baseline, ebm], args.warmup, steps)
    settings: EBMSettings = framework.settings
    positive_pairs, negative_pairs = timers.pairs[-2][0], timers.pairs[-1][0]  # the last step's two energies
    return {
        **bench.describe(), **compare(baseline.variant.times, ebm.variant.times, "ebm"), "steps": steps,
        "warmup": args.warmup,
        "sgld_iters": settings.sampler.iters, "ebm_dims": [settings.node_dim, settings.edge_dim, settings.pooling_dim],
        "energy_params": sum(p.numel() for p in framework.energy_model.parameters()),
        "trainable_params": {"baseline": trainable_params(baseline.variant), "ebm": trainable_params(ebm.variant)},
        "pairs_per_step": {"sampled": negative_pairs, "positive": positive_pairs},
        "loss_terms": {"baseline": baseline.variant.loss_terms, "ebm": ebm.variant.loss_terms},
        "phases": {"baseline": phase_medians(baseline.variant.times), "ebm": phase_medians(ebm.variant.times)},
        "breakdown": ebm_breakdown(baseline, ebm),
        "step_s": {"baseline": [round(t["total"], 4) for t in baseline.variant.times],
                   "ebm": [round(t["total"], 4) for t in ebm.variant.times]},
        "_settings": settings, "_feature_dim": framework.energy_model.image_node_embed.in_features,
    }


# ------------------------------------------------------------------------------------------ memory
class DenseEdgeGNN(torch.nn.Module):
    """``EdgeGNN``'s modules run on the release's dense layout: edge states E [N, N, d_e] over all
    node pairs of the batch, adjacency A [N, N]; node->node = A n / (A 1 + eps), edge->node = sum_i
    A[i, j] E[i, j], node->edge = MLP(A[i, j] [n_i, n_j]) and the edge GRU on every cell (EBM.md 2.4).
    Returns the edge states at ``pairs``, as the release reads them."""

    def __init__(self, layer: EdgeGNN) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, pairs: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        layer, n, d = self.layer, nodes.shape[0], edges.shape[1]
        subjects, objects = pairs[:, 0], pairs[:, 1]
        adjacency = torch.zeros(n, n, dtype=nodes.dtype, device=nodes.device)
        adjacency[subjects, objects] = 1.0
        dense = torch.zeros(n, n, d, dtype=edges.dtype, device=edges.device).index_put((subjects, objects), edges)
        degree = adjacency.sum(dim=1, keepdim=True) + DEGREE_EPS
        for _ in range(layer.iters):
            node_msg = adjacency @ nodes / degree
            edge_msg = (adjacency[:, :, None] * dense).sum(dim=0)
            pair_in = torch.cat([nodes[:, None, :].expand(n, n, -1), nodes[None, :, :].expand(n, n, -1)], dim=2)
            pair_msg = layer.node2edge((pair_in * adjacency[:, :, None]).reshape(n * n, -1))
            update = layer.alpha * layer.node2node(node_msg) + (1 - layer.alpha) * layer.edge2node(edge_msg)
            nodes = layer.node_gru(update, nodes)
            dense = layer.edge_gru(pair_msg, dense.reshape(n * n, d)).reshape(n, n, d)
        return nodes, dense[subjects, objects]


@contextmanager
def dense_layout(model: EnergyModel) -> Iterator[None]:
    edge_list = model.scene_gnn
    model.scene_gnn = DenseEdgeGNN(edge_list)
    try:
        yield
    finally:
        model.scene_gnn = edge_list


def random_graph(images: int, nodes: int, pairs_per_image: Optional[int], feature_dim: int, num_obj: int,
                 num_rel: int, seed: int) -> GraphBatch:
    """``images`` images of ``nodes`` nodes, all ordered pairs (or the first ``pairs_per_image``); the
    sampled graph's inputs require grad (states from the predictor, features from the box head)."""
    generator = torch.Generator().manual_seed(seed)
    local = torch.tensor([(s, o) for s in range(nodes) for o in range(nodes) if s != o], dtype=torch.long)
    local = local[:pairs_per_image] if pairs_per_image is not None else local
    pairs = torch.cat([local + i * nodes for i in range(images)])
    total = images * nodes
    boxes = torch.rand(total, 9, generator=generator)
    return GraphBatch(torch.rand(total, feature_dim, generator=generator).requires_grad_(),
                      boxes, torch.rand(total, num_obj, generator=generator),
                      torch.rand(pairs.shape[0], num_rel, generator=generator).requires_grad_(), pairs,
                      torch.arange(images).repeat_interleave(nodes), torch.arange(images).repeat_interleave(
                          local.shape[0]), images)


def saved_bytes(model: EnergyModel, graph: GraphBatch) -> int:
    """Bytes of the tensors autograd saves in one energy forward (unique storages) plus its output."""
    storages: Dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    inputs = {t.untyped_storage().data_ptr() for t in (graph.image_features, graph.boxes, graph.node_states,
                                                        graph.edge_states, graph.pairs)}
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        energy = model(graph)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in params and ptr not in inputs) + energy.nbytes


def fit_linear(rows: List[Tuple[float, ...]], values: List[float]) -> torch.Tensor:
    """Least-squares coefficients of values ~ rows (float64)."""
    a, b = torch.tensor(rows, dtype=torch.float64), torch.tensor(values, dtype=torch.float64)[:, None]
    return torch.linalg.lstsq(a, b).solution[:, 0]


def layout_row(images: int, nodes: int, edges: int) -> Dict[str, Tuple[float, ...]]:
    """What the saved bytes are linear in: edge list (nodes, pairs, images, 1); dense (nodes, N_tot^2
    cells, pairs (the scatter into and the read-out of the grid, the edge pooling), images, 1)."""
    return {"edge_list": (nodes, edges, images, 1.0), "dense": (nodes, nodes * nodes, edges, images, 1.0)}


def memory_estimate(args: argparse.Namespace, settings: EBMSettings, feature_dim: int) -> Dict[str, Any]:
    torch.manual_seed(args.seed)
    s = settings
    model = EnergyModel(feature_dim, s.num_obj_classes, s.num_rel_classes, node_dim=s.node_dim, edge_dim=s.edge_dim,
                        pooling_dim=s.pooling_dim, box_embed_dim=s.box_embed_dim, iters=s.gnn_iters, alpha=s.alpha,
                        bn_momentum=s.bn_momentum).train()
    # (images, nodes per image, pairs per image or None for all): sizes the fit is measured at
    small = [(1, 6, None), (1, 10, None), (2, 8, None), (3, 5, 7), (2, 12, 30), (1, 7, 5), (2, 7, 9)]
    features: Dict[str, List[Tuple[float, ...]]] = {"edge_list": [], "dense": []}
    values: Dict[str, List[float]] = {"edge_list": [], "dense": []}
    max_diff = 0.0
    for seed, (images, nodes, pairs) in enumerate(small):
        graph = random_graph(images, nodes, pairs, feature_dim, s.num_obj_classes, s.num_rel_classes, seed)
        row = layout_row(images, images * nodes, graph.pairs.shape[0])
        values["edge_list"].append(saved_bytes(model, graph))
        features["edge_list"].append(row["edge_list"])
        with dense_layout(model):
            values["dense"].append(saved_bytes(model, graph))
            features["dense"].append(row["dense"])
            with torch.no_grad():
                dense_energy = model.eval()(graph)
        with torch.no_grad():
            max_diff = max(max_diff, float((model(graph) - dense_energy).abs().max()))
        model.train()
    coefficients = {layout: fit_linear(features[layout], values[layout]) for layout in features}
    residual = max(abs(float(torch.tensor(row, dtype=torch.float64) @ coefficients[layout]) - value) / value
                   for layout in features for row, value in zip(features[layout], values[layout]))

    def predict(layout: str, images: int, nodes: int, edges: int) -> float:
        row = torch.tensor(layout_row(images, images * nodes, edges)[layout], dtype=torch.float64)
        return float(row @ coefficients[layout]) / MB

    nodes, pairs = args.mem_nodes, args.mem_nodes * (args.mem_nodes - 1)
    gt_nodes, gt_pairs = args.boxes, args.rels
    result: Dict[str, Any] = {
        "method": ("bytes the energy model saves for its backward (saved_tensors_hooks, unique storages, plus "
                   "its output), measured at small sizes and extrapolated with a least-squares fit linear in "
                   "nodes, pairs, images and (dense) the N_tot^2 cells; the image graph is an edge list in "
                   "both (its dense form adds only an N_tot x N_tot adjacency); peak = positive + sampled graph"),
        "fit_max_rel_residual": float(f"{residual:.2e}"),
        "dense_vs_edge_list_max_energy_diff": float(f"{max_diff:.2e}"),
        "energy_dims": [s.node_dim, s.edge_dim, s.pooling_dim], "feature_dim": feature_dim,
        "nodes_per_image": nodes, "pairs_per_image": pairs, "gt_boxes": gt_nodes, "gt_rels": gt_pairs,
    }
    for label, images in (("one_image", 1), (f"{args.mem_images}_images", args.mem_images)):
        entry = {}
        for layout in ("edge_list", "dense"):
            negative = predict(layout, images, nodes, images * pairs)
            positive = predict(layout, images, gt_nodes, images * gt_pairs)
            entry[layout] = {"sampled_graph_mb": round(negative, 1), "positive_graph_mb": round(positive, 1),
                             "peak_mb": round(negative + positive, 1)}
        entry["dense_over_edge_list"] = round(entry["dense"]["peak_mb"] / entry["edge_list"]["peak_mb"], 3)
        result[label] = entry
    if not args.no_memory_check:
        graph = random_graph(1, nodes, None, feature_dim, s.num_obj_classes, s.num_rel_classes, 99)
        measured = {"edge_list": saved_bytes(model, graph) / MB}
        with dense_layout(model):
            measured["dense"] = saved_bytes(model, graph) / MB
        result["check_one_image_sampled_graph_measured_mb"] = {k: round(v, 1) for k, v in measured.items()}
    return result


# --------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> Dict[str, Any]:
    torch.set_num_threads(args.threads)
    result: Dict[str, Any] = {}
    settings, feature_dim = None, 0
    for dims, steps in ((full_dims(args.min_size, args.batch, args.full_config), args.steps),
                        (small_dims(args.small_min_size, args.small_batch, args.small_config), args.small_steps)):
        measured = measure_dims(args, dims, steps)
        gc.collect()  # the two models of these dims
        if dims.name == "full":
            settings, feature_dim = measured["_settings"], measured["_feature_dim"]
        result[dims.name] = {k: v for k, v in measured.items() if not k.startswith("_")}
    memory = memory_estimate(args, settings, feature_dim)
    return {"ratio_full": result["full"]["ratio"], "ratio_small": result["small"]["ratio"],
            "threads": torch.get_num_threads(), **result, "memory": memory}


def summary_lines(result: Dict[str, Any]) -> List[str]:
    lines = []
    for name in ("full", "small"):
        r = result[name]
        width, height = r["image_size"]
        lines += [(f"[{name}] {r['config']} {r['predictor']} PredCls {width}x{height} batch {r['batch']}, "
                   f"{result['threads']} threads, median of {r['steps']} steps, SGLD {r['sgld_iters']} steps, "
                   f"{r['pairs_per_step']['sampled']} sampled pairs"),
                  (f"  baseline {r['baseline_s']:.3f} s  ebm {r['ebm_s']:.3f} s  ratio {r['ratio']:.3f}  "
                   f"(paired {r['paired_ratio']:.3f}, cpu {r['cpu_ratio']:.3f}), energy model "
                   f"{r['energy_params']:,} params"),
                  "  extra EBM time by part (s, median per step):"]
        lines += [f"    {part:<24s} {value:>8.3f}" for part, value in r["breakdown"].items()]
    m = result["memory"]
    lines.append(f"energy-model memory kept for backward, {m['nodes_per_image']} detections "
                 f"({m['pairs_per_image']} pairs) per image:")
    for label in ("one_image", next(k for k in m if k.endswith("_images"))):
        entry = m[label]
        lines.append(f"  {label}: edge list {entry['edge_list']['peak_mb']:.1f} MB, dense "
                     f"{entry['dense']['peak_mb']:.1f} MB ({entry['dense_over_edge_list']:.2f}x)")
    return lines


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    print("\n".join(summary_lines(result)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
