"""Installs the packages `maskrcnn_benchmark` and `hml_patch`."""
from setuptools import find_packages, setup

setup(
    name="maskrcnn_benchmark",
    version="0.1.0",
    description="Scene graph generation on PyTorch 2.x with the Scene-Graph-Benchmark's layout, and HML built in",
    packages=find_packages(include=("maskrcnn_benchmark*", "hml_patch*")),
    python_requires=">=3.10",
    install_requires=["torch>=2.4", "torchvision", "yacs", "numpy", "h5py", "tqdm", "pillow"],
)
