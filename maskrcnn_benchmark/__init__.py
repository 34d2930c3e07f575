"""Scene graph generation on PyTorch 2.x with the Scene-Graph-Benchmark's layout and habits."""

__version__ = "0.1.0"
