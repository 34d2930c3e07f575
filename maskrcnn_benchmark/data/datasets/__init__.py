"""Datasets by the names the catalog's ``factory`` field uses."""
from .visual_genome import VGDataset

__all__ = ["VGDataset"]
