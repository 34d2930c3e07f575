"""A short description of the software and hardware, logged at the start of every tool run."""
from __future__ import annotations

import platform
import sys

import torch


def collect_env_info() -> str:
    """Python, PyTorch, torchvision, CUDA / cuDNN versions and the visible devices, one per line."""
    try:
        import torchvision
        torchvision_version = torchvision.__version__
    except ImportError:
        torchvision_version = "not installed"
    lines = [
        f"Python: {sys.version.split()[0]} ({platform.platform()})",
        f"PyTorch: {torch.__version__} (CUDA build {torch.version.cuda or 'none'})",
        f"torchvision: {torchvision_version}",
        f"CPU threads: {torch.get_num_threads()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"cuDNN: {torch.backends.cudnn.version()}")
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"GPU {i}: {props.name} ({props.total_memory / 2 ** 30:.1f} GiB)")
    else:
        lines.append("GPU: none available (CPU only)")
    return "\n".join(lines)
