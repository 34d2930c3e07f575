"""HML importance state: Fisher, path-integral Omega and the MR penalty over flat buffers.

`ImportanceState` is the interface the trainer uses; `kernels` selects the compiled
(`hml_patch._C`: OpenMP CPU, CUDA) or PyTorch-reference implementation of its fused pass.
"""
from hml_patch.importance.kernels import backend_name, forced_backend, set_backend
from hml_patch.importance.state import ImportanceState, canonical_name, select_parameters

__all__ = ["ImportanceState", "backend_name", "canonical_name", "forced_backend", "select_parameters",
           "set_backend"]
