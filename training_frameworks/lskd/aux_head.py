"""The synchronous strategy's auxiliary branch: copies of the predictor's final logit layer(s).

The predictor's relation logits are a sum of a few final layers applied to its pair
representation (LSKD.md section 3.2): MOTIFS ``rel_compress(visual) + freq_bias``,
Transformer ``rel_compress(visual) + ctx_compress(pairs) + freq_bias``, VCTree
``ctx_compress(visual) + freq_bias``, IMP ``rel_fc(edge)``. :class:`LayerInputs` records
what those layers received in the student's forward (forward hooks, so the benchmark's
predictors stay as they are) and :class:`AuxiliaryLogitHead` applies its own copies to
the same inputs. The linear copies are initialised afresh with the predictor's own init;
the frequency-bias copy starts from the predictor's table (the statistics' log
frequencies in a new model), as a fresh predictor's would.
"""
from __future__ import annotations

import copy
import functools
from typing import Dict, List, Mapping, Tuple

import torch
from torch import nn

# Per predictor class: (final layer, how its copy is initialised). Layers absent from a
# predictor (the frequency bias with PREDICT_USE_BIAS False) are left out.
AUX_LOGIT_LAYERS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "MotifPredictor": (("rel_compress", "xavier"), ("freq_bias.obj_baseline", "copy")),
    "TransformerPredictor": (("rel_compress", "xavier"), ("ctx_compress", "xavier"),
                             ("freq_bias.obj_baseline", "copy")),
    "VCTreePredictor": (("ctx_compress", "xavier"), ("freq_bias.obj_baseline", "copy")),
    "IMPPredictor": (("context_layer.rel_fc", "caffe2_xavier"),),
}


def _has_submodule(root: nn.Module, name: str) -> bool:
    try:
        root.get_submodule(name)
    except AttributeError:
        return False
    return True


def logit_layers(predictor: nn.Module) -> List[Tuple[str, str]]:
    """The ``(name, init)`` final layers of ``predictor`` (by its class name) that it has."""
    kind = type(predictor).__name__
    if kind not in AUX_LOGIT_LAYERS:
        raise ValueError(f"synchronous LS-KD knows the final logit layers of {sorted(AUX_LOGIT_LAYERS)}, "
                         f"not of {kind}")
    return [(name, init) for name, init in AUX_LOGIT_LAYERS[kind] if _has_submodule(predictor, name)]


def _fresh_copy(layer: nn.Module, init: str) -> nn.Module:
    clone = copy.deepcopy(layer)
    clone.requires_grad_(True)
    if init == "copy":
        return clone
    if not isinstance(clone, nn.Linear):
        raise ValueError(f"init {init!r} is for linear layers, got {type(layer).__name__}")
    with torch.no_grad():
        if init == "xavier":
            nn.init.xavier_normal_(clone.weight, gain=1.0)
        elif init == "caffe2_xavier":
            nn.init.kaiming_uniform_(clone.weight, a=1)
        else:
            raise ValueError(f"unknown init {init!r}")
        if clone.bias is not None:
            nn.init.zeros_(clone.bias)
    return clone


def _key(name: str) -> str:
    return name.replace(".", "__")


class AuxiliaryLogitHead(nn.Module):
    """Sum of its layers applied to the inputs their originals received: ``sum_l copy_l(x_l)``."""

    def __init__(self, layers: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.names = list(layers)
        self.layers = nn.ModuleDict({_key(name): layer for name, layer in layers.items()})

    @classmethod
    def from_predictor(cls, predictor: nn.Module) -> "AuxiliaryLogitHead":
        return cls({name: _fresh_copy(predictor.get_submodule(name), init) for name, init in logit_layers(predictor)})

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.names if name not in inputs]
        if missing:
            raise RuntimeError(f"the predictor's layers {missing} did not run in this forward")
        return sum(self.layers[_key(name)](inputs[name]) for name in self.names)


class LayerInputs:
    """The first input of named submodules in their latest forward (recorded by forward hooks).

    ``take`` hands the inputs over and forgets them, so no graph outlives its step.
    """

    def __init__(self) -> None:
        self.inputs: Dict[str, torch.Tensor] = {}
        self._handles: List[torch.utils.hooks.RemovableHandle] = []

    def attach(self, root: nn.Module, names: List[str]) -> None:
        """Record the inputs of ``root``'s submodules ``names`` (replacing earlier hooks)."""
        self.detach()
        for name in names:
            self._handles.append(root.get_submodule(name).register_forward_hook(functools.partial(self._record, name)))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.inputs = {}

    def _record(self, name: str, module: nn.Module, args: Tuple, output: torch.Tensor) -> None:
        if module.training:
            self.inputs[name] = args[0]

    def take(self) -> Dict[str, torch.Tensor]:
        inputs, self.inputs = self.inputs, {}
        return inputs
