"""The classifier: a torchvision ResNet whose fc layer is replaced by one with 56 outputs."""
from __future__ import annotations

import torch
import torchvision

ARCHS = ("resnet18", "resnet50")


def build_classifier(arch: str, num_classes: int, weights_file: str = "") -> torch.nn.Module:
    """ResNet-18/50, random or with the backbone of ``weights_file`` (a torchvision state dict; its fc is dropped)."""
    if arch not in ARCHS:
        raise ValueError(f"PSG_CLS.ARCH should be one of {ARCHS}, got {arch!r}")
    model = getattr(torchvision.models, arch)(weights=None)
    if weights_file:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wrong = [key for key in missing if not key.startswith("fc.")] + list(unexpected)
        if wrong:
            raise ValueError(f"{weights_file} is not a torchvision {arch} state dict: keys {wrong[:5]} differ")
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return model
