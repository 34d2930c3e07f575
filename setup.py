"""Installs the packages `maskrcnn_benchmark`, `hml_patch` and `training_frameworks`, and builds `hml_patch._C`.

`hml_patch._C` holds HML's fused importance kernels: the OpenMP CPU code always, the CUDA
code when nvcc and a target architecture are present (rules and flags in
`hml_patch/importance/extension_spec.py`; HML_NO_CUDA=1 / HML_FORCE_CUDA=1 override). If
the extension cannot be built, the install goes on without it and HML uses its PyTorch
kernels (one warning at run time); HML_REQUIRE_EXTENSION=1 makes that failure fatal.
"""
import os
import runpy
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def extension_setup():
    """(ext_modules, cmdclass) for hml_patch._C, or nothing when torch is not installed."""
    try:
        from torch.utils import cpp_extension
    except ImportError:
        print("hml_patch._C: torch is not installed, skipping the compiled kernels", file=sys.stderr)
        return [], {}
    spec = runpy.run_path(os.path.join(HERE, "hml_patch", "importance", "extension_spec.py"))
    with_cuda, reason = spec["cuda_build_decision"]()
    print(f"hml_patch._C: CUDA kernels {'on' if with_cuda else 'off'} ({reason})", file=sys.stderr)
    if with_cuda:
        spec["prepare_cuda_environment"]()
    extension_class = cpp_extension.CUDAExtension if with_cuda else cpp_extension.CppExtension
    extension = extension_class("hml_patch._C", spec["source_paths"](with_cuda, relative_to=HERE),
                                **spec["extension_kwargs"](with_cuda))

    class OptionalBuildExtension(cpp_extension.BuildExtension):
        """BuildExtension that reports a failed build instead of failing the install."""

        def run(self):
            try:
                super().run()
            except Exception as exc:  # any compiler or toolchain failure
                if os.environ.get("HML_REQUIRE_EXTENSION", "0") == "1":
                    raise
                print(f"hml_patch._C could not be built ({exc}); HML will use its PyTorch kernels",
                      file=sys.stderr)

        def get_outputs(self):
            return [path for path in super().get_outputs() if os.path.exists(path)]

    return [extension], {"build_ext": OptionalBuildExtension}


ext_modules, cmdclass = extension_setup()

setup(
    name="maskrcnn_benchmark",
    version="0.1.0",
    description="Scene graph generation on PyTorch 2.x with the Scene-Graph-Benchmark's layout, and HML built in",
    packages=find_packages(include=("maskrcnn_benchmark*", "hml_patch*", "training_frameworks*")),
    package_data={"hml_patch": ["official_constants.json"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.4", "torchvision", "yacs", "numpy", "h5py", "tqdm", "pillow"],
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
