"""SGLD refinement of the predicted graph's states (EBM.md 3).

Release rule, per step: x + eps (eps ~ N(0, noise), a std), the state gradient g of sum_b E_b at
that noisy point, clamped element-wise to [-clip, clip], the step x + eps - lr * g, then each row
renormalised. Paper rule: x - (lr / 2) * grad E(x) + eps, no clamp, no renormalisation.

The gradient is taken on detached copies (``autograd.grad`` to the states only), so sampling fills
no parameter ``.grad``. As in the release, the returned states stay a differentiable function of
the initial states: the shifts are constants and the renormalisations are recorded, so the loss
on the sample reaches the predictor.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Tuple

import torch
from torch import nn

from .config import SamplerSettings
from .graph import GraphBatch, minmax_rows, simplex_rows

Normaliser = Callable[[torch.Tensor], torch.Tensor]
NORMALISERS = {"minmax": minmax_rows, "softmax": simplex_rows}


@contextmanager
def eval_batchnorm(model: nn.Module, enabled: bool) -> Iterator[None]:
    """BatchNorm layers of ``model`` in eval mode inside the block (when ``enabled``), then restored."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training] \
        if enabled else []
    for layer in layers:
        layer.eval()
    try:
        yield
    finally:
        for layer in layers:
            layer.train()


class SGLDSampler:
    """Refines ``edge_states`` (and ``node_states`` when ``sample_nodes``) of a :class:`GraphBatch`."""

    def __init__(self, settings: SamplerSettings) -> None:
        self.settings = settings
        self.normalise: Normaliser = NORMALISERS[settings.norm]

    def state_gradients(self, energy_model: nn.Module, graph: GraphBatch, sample_nodes: bool
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Gradients of the summed energy w.r.t. the (detached) edge and node states."""
        edges = graph.edge_states.detach().requires_grad_(True)
        nodes = graph.node_states.detach().requires_grad_(sample_nodes)
        probe = GraphBatch(graph.image_features.detach(), graph.boxes.detach(), nodes, edges, graph.pairs,
                           graph.node_batch, graph.edge_batch, graph.num_images)
        with torch.enable_grad(), eval_batchnorm(energy_model, self.settings.bn_eval):
            energy = energy_model(probe).sum()
            inputs = [edges, nodes] if sample_nodes else [edges]
            grads = torch.autograd.grad(energy, inputs, allow_unused=True)
        edge_grad = grads[0] if grads[0] is not None else torch.zeros_like(edges)
        node_grad = torch.zeros_like(nodes)
        if sample_nodes and grads[1] is not None:
            node_grad = grads[1]
        return edge_grad, node_grad

    def sample(self, energy_model: nn.Module, graph: GraphBatch, sample_nodes: bool) -> GraphBatch:
        """``ITERS`` steps from ``graph``'s states; node states stay the same tensor unless ``sample_nodes``."""
        nodes, edges = graph.node_states, graph.edge_states
        for _ in range(self.settings.iters):
            nodes, edges = self.step(energy_model, graph, nodes, edges, sample_nodes)
        return graph.with_states(nodes, edges)

    def step(self, energy_model: nn.Module, graph: GraphBatch, nodes: torch.Tensor, edges: torch.Tensor,
             sample_nodes: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """One update of the states: both move together, one gradient evaluation at the (noisy) joint point."""
        s = self.settings
        edge_noise = s.noise * torch.randn_like(edges) if s.noise > 0 else torch.zeros_like(edges)
        node_noise = (s.noise * torch.randn_like(nodes) if s.noise > 0 and sample_nodes
                      else torch.zeros_like(nodes))
        if s.rule == "release":
            at_nodes, at_edges = nodes + node_noise, edges + edge_noise
        else:
            at_nodes, at_edges = nodes, edges
        edge_grad, node_grad = self.state_gradients(energy_model, graph.with_states(at_nodes, at_edges),
                                                    sample_nodes)
        if s.rule == "release":
            edge_grad = edge_grad.clamp(-s.grad_clip, s.grad_clip)
            node_grad = node_grad.clamp(-s.grad_clip, s.grad_clip)
            edges = self.normalise(edges + (edge_noise - s.lr * edge_grad).detach())
            if sample_nodes:
                nodes = self.normalise(nodes + (node_noise - s.lr * node_grad).detach())
        else:
            edges = edges + (edge_noise - 0.5 * s.lr * edge_grad).detach()
            if sample_nodes:
                nodes = nodes + (node_noise - 0.5 * s.lr * node_grad).detach()
        return nodes, edges
