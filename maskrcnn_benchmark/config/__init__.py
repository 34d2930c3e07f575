"""Project configuration: ``from maskrcnn_benchmark.config import cfg`` as in the benchmark."""
from .defaults import _C as cfg

__all__ = ["cfg"]
