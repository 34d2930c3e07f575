"""Synthetic dataset in the PSG file format (``psg.json``, COCO-style images, panoptic PNGs, CE7454 file).

``make_synthetic_psg(out_dir, num_images, seed, config)`` writes the files and returns a
short report; ``SyntheticPSGConfig`` holds the knobs.
"""
from .config import SyntheticPSGConfig
from .generate import make_synthetic_psg

__all__ = ["SyntheticPSGConfig", "make_synthetic_psg"]
