"""Datasets by the names the catalog's ``factory`` field uses."""
from .psg import PSGDataset
from .visual_genome import VGDataset

__all__ = ["PSGDataset", "VGDataset"]
