"""Hierarchical Memory Learning (ECCV 2022) for the scene graph benchmark.

Everything HML-specific lives in this package and reaches `maskrcnn_benchmark`
only through registries, config keys and named hooks.
"""
