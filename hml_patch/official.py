"""The authors' released constants for "official" mode (HML.md section 7, REFERENCE 6.4).

Their stage-1 predicate list and their two hard-coded relation cross-entropy weight
vectors are indexed by VG150 predicate ids; here they are looked up by predicate
name, so they apply to any dataset whose predicates carry VG150 names (such as the
synthetic dataset) and fail clearly otherwise.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any, Dict, List, Sequence

import torch

CONSTANTS_FILE = os.path.join(os.path.dirname(__file__), "official_constants.json")


@lru_cache(maxsize=1)
def official_constants() -> Dict[str, Any]:
    """The shipped constants file, read once."""
    with open(CONSTANTS_FILE) as f:
        return json.load(f)


def official_layer_lists(predicate_names: Sequence[str]) -> List[List[str]]:
    """The authors' split for a dataset: their stage-1 predicates present in it, then all others."""
    coarse = [name for name in official_constants()["stage_predicates"][0] if name in predicate_names[1:]]
    if not coarse:
        raise ValueError("none of the authors' stage-1 predicates "
                         f"{official_constants()['stage_predicates'][0]} is a predicate of this dataset; "
                         "official mode needs VG150 predicate names (or set HML.MODE paper)")
    return [coarse, ["*"]]


def official_class_weights(predicate_names: Sequence[str], stage: int) -> torch.Tensor:
    """The authors' relation CE weights of ``stage`` (1-based), background first, for these predicates."""
    constants = official_constants()
    vectors = constants["relation_ce_class_weights"]
    if not 1 <= stage <= len(vectors):
        raise ValueError(f"the authors' code has class weights for {len(vectors)} stages only (its stage "
                         f"{len(vectors) + 1} crashes); official mode cannot train stage {stage}")
    index = {name: i for i, name in enumerate(constants["predicate_names"])}
    missing = [name for name in predicate_names[1:] if name not in index]
    if missing:
        raise ValueError(f"predicates {missing} have no weight in the authors' constants (VG150 names only)")
    weights = vectors[stage - 1]
    return torch.tensor([weights[0]] + [weights[index[name]] for name in predicate_names[1:]], dtype=torch.float32)
