"""Data loading: datasets, transforms, samplers and the builders that read the config."""
from .build import build_dataset, get_dataset_statistics, make_data_loader

__all__ = ["build_dataset", "get_dataset_statistics", "make_data_loader"]
