"""Sources, compiler flags and build conditions of the compiled importance kernels.

One description for both ways of building `hml_patch._C`: `setup.py` (ahead of time; it
loads this file by path, so nothing here may import the package) and `build_jit`
(torch.utils.cpp_extension.load, used by the CUDA check script on a GPU machine).
"""
import glob
import os
import shutil
from typing import Dict, List, Tuple

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
CPU_SOURCES = ["bindings.cpp", "importance_cpu.cpp"]
CUDA_SOURCES = ["importance_cuda.cu"]
# No FMA contraction, no fast math: the kernels must round exactly like the PyTorch reference.
# -fno-trapping-math only lets the compiler vectorise the clamps (no result changes).
CXX_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math"]
LINK_FLAGS = ["-fopenmp"]
NVCC_FLAGS = ["-O3", "--fmad=false", "-prec-div=true"]
# Architectures compiled when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset.
DEFAULT_ARCH_LIST = "8.0;9.0+PTX"


def source_paths(with_cuda: bool, relative_to: str = "") -> List[str]:
    """Paths of the sources, relative to `relative_to` when given (setuptools wants that)."""
    names = CPU_SOURCES + (CUDA_SOURCES if with_cuda else [])
    paths = [os.path.join(CSRC, n) for n in names]
    return [os.path.relpath(p, relative_to) for p in paths] if relative_to else paths


def cuda_wheel_include_dirs() -> List[str]:
    """Header folders of the `nvidia-*` CUDA wheels that torch depends on (cuda_runtime.h etc.)."""
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    return sorted(d for d in glob.glob(os.path.join(site, "nvidia", "*", "include")) if os.path.isdir(d))


def cuda_build_decision() -> Tuple[bool, str]:
    """Whether to compile the CUDA kernels, and why.

    HML_NO_CUDA=1 disables, HML_FORCE_CUDA=1 requires them. Otherwise they are built when
    torch has CUDA, nvcc is found under CUDA_HOME, and there is something to compile for: a
    visible GPU or an explicit TORCH_CUDA_ARCH_LIST (so CPU-only CI builds only the CPU code).
    """
    if os.environ.get("HML_NO_CUDA", "0") == "1":
        return False, "HML_NO_CUDA=1"
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    forced = os.environ.get("HML_FORCE_CUDA", "0") == "1"
    nvcc = os.path.join(CUDA_HOME, "bin", "nvcc") if CUDA_HOME else None
    if torch.version.cuda is None:
        reason = "torch was built without CUDA"
    elif nvcc is None or not (os.path.exists(nvcc) or shutil.which("nvcc")):
        reason = "nvcc not found (set CUDA_HOME)"
    elif forced or torch.cuda.is_available() or os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return True, "HML_FORCE_CUDA=1" if forced else "CUDA toolkit and a target architecture found"
    else:
        reason = "no visible GPU and TORCH_CUDA_ARCH_LIST unset (HML_FORCE_CUDA=1 builds anyway)"
    if forced:
        raise RuntimeError(f"HML_FORCE_CUDA=1 but the CUDA kernels cannot be built: {reason}")
    return False, reason


def prepare_cuda_environment() -> None:
    """Give torch an architecture list when no GPU is visible to pick one from."""
    import torch

    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST


def extension_kwargs(with_cuda: bool) -> Dict[str, object]:
    """Keyword arguments shared by CppExtension/CUDAExtension and cpp_extension.load."""
    if not with_cuda:
        return {"extra_compile_args": {"cxx": CXX_FLAGS}, "extra_link_args": LINK_FLAGS}
    # The wheels' headers come last (-isystem after CUDA_HOME's) and only for the host
    # compiler: they fill in what a bare nvcc install lacks without shadowing its headers.
    fallback_includes = [arg for d in cuda_wheel_include_dirs() for arg in ("-isystem", d)]
    return {
        "extra_compile_args": {"cxx": CXX_FLAGS + ["-DHML_WITH_CUDA"] + fallback_includes,
                               "nvcc": NVCC_FLAGS + ["-DHML_WITH_CUDA"]},
        "extra_link_args": LINK_FLAGS,
    }


def build_jit(with_cuda: bool, build_directory: str, verbose: bool = False):
    """Compile and import the kernels now (ninja), returning the module."""
    from torch.utils.cpp_extension import load

    if with_cuda:
        prepare_cuda_environment()
    kwargs = extension_kwargs(with_cuda)
    compile_args = kwargs["extra_compile_args"]
    os.makedirs(build_directory, exist_ok=True)
    return load(
        name="hml_importance_jit_cuda" if with_cuda else "hml_importance_jit",
        sources=source_paths(with_cuda),
        extra_cflags=compile_args["cxx"],
        extra_cuda_cflags=compile_args.get("nvcc", []),
        extra_ldflags=kwargs["extra_link_args"],
        build_directory=build_directory,
        with_cuda=with_cuda,
        verbose=verbose,
    )
