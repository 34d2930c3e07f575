"""Synthetic dataset in the VG150 file format, with a known coarse/fine predicate hierarchy.

``make_synthetic_vg(out_dir, num_images, seed, config)`` writes the files and returns the
report; ``SyntheticWorldConfig`` holds the knobs.
"""
from .config import SyntheticWorldConfig
from .generate import make_synthetic_vg
from .report import format_report

__all__ = ["SyntheticWorldConfig", "format_report", "make_synthetic_vg"]
