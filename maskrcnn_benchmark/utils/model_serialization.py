"""Load a checkpoint's weights into a model by the benchmark's longest-suffix key matching.

A model key is matched to the loaded key that is its longest string suffix, after
``load_mapping`` replaced substrings of the model key (``{model_substring:
file_substring}``). This lets a detector checkpoint initialise a relation model
and lets files whose keys carry an extra prefix load unchanged.
"""
from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What happened to every model key and every loaded key.

    ``loaded``: (model key, file key) pairs copied into the model.
    ``missing``: model keys with no matching file key ("NO-MATCHING"); they keep their values.
    ``unexpected``: file keys that no model key used.
    ``shape_mismatch``: (model key, file key, model shape, file shape) pairs that were skipped.
    """

    loaded: List[Tuple[str, str]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: List[Tuple[str, str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines: counts, then the missing / unexpected / mismatched keys grouped by module."""
        counts = (f"loaded {len(self.loaded)} keys, {len(self.missing)} missing (NO-MATCHING), "
                  f"{len(self.unexpected)} unexpected, {len(self.shape_mismatch)} shape mismatches")
        lines = [counts]
        if self.missing:
            lines.append("NO-MATCHING (kept their current values): " + group_keys(self.missing))
        if self.unexpected:
            lines.append("unexpected (unused keys of the file): " + group_keys(self.unexpected))
        for key, file_key, shape, file_shape in self.shape_mismatch:
            lines.append(f"shape mismatch, skipped: {key} {tuple(shape)} <- {file_key} {tuple(file_shape)}")
        return "\n".join(lines)


def group_keys(keys: List[str]) -> str:
    """``a.b.{x, y}; c.z``: keys grouped by their module path, in first-seen order."""
    groups: Dict[str, List[str]] = defaultdict(list)
    for key in keys:
        module, _, leaf = key.rpartition(".")
        groups[module].append(leaf)
    parts = []
    for module, leaves in groups.items():
        inner = leaves[0] if len(leaves) == 1 else "{" + ", ".join(leaves) + "}"
        parts.append(f"{module}.{inner}" if module else inner)
    return "; ".join(parts)


def strip_prefix_if_present(state_dict: Mapping[str, torch.Tensor], prefix: str) -> "OrderedDict[str, torch.Tensor]":
    """Remove ``prefix`` from every key that starts with it (e.g. DistributedDataParallel's ``module.``)."""
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in state_dict.items())


def apply_load_mapping(key: str, load_mapping: Mapping[str, str]) -> str:
    """The file-side name of model key ``key``.

    As in the benchmark, each mapping entry whose source occurs in the ORIGINAL key
    replaces it there, and the last such entry wins.
    """
    mapped = key
    for source, target in load_mapping.items():
        if source in key:
            mapped = key.replace(source, target)
    return mapped


def longest_suffix_match(key: str, candidates: Mapping[str, object]) -> Optional[str]:
    """The longest string in ``candidates`` that ``key`` ends with, or None.

    Equivalent to the benchmark's all-pairs ``endswith`` matrix, but each key only
    looks up its own suffixes: O(len(key)) hash lookups.
    """
    for start in range(len(key)):
        suffix = key[start:]
        if suffix in candidates:
            return suffix
    return None


def align_and_update_state_dicts(model_state_dict: "OrderedDict[str, torch.Tensor]",
                                 loaded_state_dict: Mapping[str, torch.Tensor],
                                 load_mapping: Optional[Mapping[str, str]] = None) -> LoadReport:
    """Copy matched tensors of ``loaded_state_dict`` into ``model_state_dict`` in place.

    Tensors whose shape differs from the model's are skipped and reported.
    """
    load_mapping = load_mapping or {}
    report = LoadReport()
    used = set()
    for key in sorted(model_state_dict.keys()):
        mapped = apply_load_mapping(key, load_mapping)
        if mapped != key:
            logger.debug("load_mapping: %s looks for %s", key, mapped)
        file_key = longest_suffix_match(mapped, loaded_state_dict)
        if file_key is None:
            report.missing.append(key)
            continue
        used.add(file_key)
        current, loaded = model_state_dict[key], loaded_state_dict[file_key]
        if tuple(current.shape) != tuple(loaded.shape):
            report.shape_mismatch.append((key, file_key, tuple(current.shape), tuple(loaded.shape)))
            logger.warning("Skipping %s: the model has shape %s, the file's %s has shape %s",
                           key, tuple(current.shape), file_key, tuple(loaded.shape))
            continue
        model_state_dict[key] = loaded
        report.loaded.append((key, file_key))
        logger.debug("%s <- %s %s", key, file_key, tuple(loaded.shape))
    report.unexpected = [k for k in loaded_state_dict.keys() if k not in used]
    return report


def load_state_dict(model: torch.nn.Module, loaded_state_dict: Mapping[str, torch.Tensor],
                    load_mapping: Optional[Mapping[str, str]] = None) -> LoadReport:
    """Load ``loaded_state_dict`` into ``model`` by longest-suffix matching; return the report.

    A ``module.`` prefix in the file's keys is stripped first. Non-tensor entries
    are ignored. The report is logged in compact form.
    """
    tensors = OrderedDict((k, v) for k, v in loaded_state_dict.items() if isinstance(v, torch.Tensor))
    tensors = strip_prefix_if_present(tensors, prefix="module.")
    model_state_dict = model.state_dict()
    report = align_and_update_state_dicts(model_state_dict, tensors, load_mapping)
    model.load_state_dict(model_state_dict)
    logger.info("Weights: %s", report.summary())
    return report
