"""A two-level predicate hierarchy: fine predicates with a coarse parent (HIERARCHY.md section D).

Every foreground predicate is either *coarse* (no parent: ``on``, ``has``, ...)
or *fine* (one coarse parent: ``sitting on`` -> ``on``). Parents are never fine
themselves, so the tree has exactly two levels; a coarse predicate may have no
children. The hierarchy is stored in a predicate-tree JSON file (the file HML's
tree tool writes, or one with only these keys):

    "predicates": ["__background__", "has", "on", "sitting on", ...],   # by id
    "parents": {"sitting on": "on", "wearing": "has", ...},              # fine -> coarse
    "parent_sources": {"sitting on": "where this link comes from", ...}  # optional

``TEST.RELATION.PREDICATE_TREE`` names such a file to switch the hierarchy
metrics on; ``PREDICATE_RELATIONS`` classify a predicted predicate against an
annotated one for those metrics.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

BACKGROUND = "__background__"

# How a predicted predicate p relates to an annotated (GT) predicate g (HIERARCHY.md D1.5).
EXACT, REFINE, COARSEN, SIBLING, CROSS_BRANCH, BACKGROUND_PREDICTION = range(6)
PREDICATE_RELATIONS = ("exact", "refine", "coarsen", "sibling", "cross_branch", "background")


class HierarchyError(ValueError):
    """A predicate hierarchy (file or parent links) is invalid for the given predicates."""


def check_predicate_names(stored: Sequence[str], names: Optional[Sequence[str]], where: str) -> List[str]:
    """``stored`` (a file's predicate list by id, background first), checked against the dataset's ``names``."""
    stored = list(stored)
    if not stored or stored[0] != BACKGROUND:
        raise HierarchyError(f"{where}: the predicate list must start with {BACKGROUND!r} (id 0)")
    if names is not None:
        names = list(names)
        for pid in range(max(len(stored), len(names))):
            mine = stored[pid] if pid < len(stored) else None
            theirs = names[pid] if pid < len(names) else None
            if mine != theirs:
                raise HierarchyError(f"{where}: predicate {pid} is {mine!r} in the tree but {theirs!r} in the "
                                     f"dataset dictionary ({len(stored) - 1} vs {len(names) - 1} predicates)")
    return stored


def read_tree_file(path: str) -> Any:
    """The JSON content of a predicate tree file (HierarchyError naming ``path`` when absent or invalid)."""
    if not os.path.isfile(path):
        raise HierarchyError(f"predicate tree file {path} does not exist")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise HierarchyError(f"{path} is not valid JSON ({err})") from err


@dataclass(frozen=True)
class PredicateHierarchy:
    """Parent of every predicate id; ``parent[p] == p`` for coarse predicates and background (id 0).

    ``sources`` maps a fine predicate's name to where its link comes from (free text).
    """

    names: Tuple[str, ...]
    parent: Tuple[int, ...]
    sources: Dict[str, str] = field(default_factory=dict)

    # --------------------------------------------------------------- building
    @classmethod
    def from_links(cls, names: Sequence[str], links: Mapping[str, str], sources: Optional[Mapping[str, str]] = None,
                   where: str = "predicate hierarchy") -> "PredicateHierarchy":
        """From ``fine name -> coarse name`` links over the dataset's predicate ``names`` (background first)."""
        names = check_predicate_names(names, None, where)
        index = {name: pid for pid, name in enumerate(names)}
        parent = list(range(len(names)))
        for child, coarse in links.items():
            for role, name in (("fine predicate", child), ("parent", coarse)):
                if name not in index or index[name] == 0:
                    raise HierarchyError(f"{where}: {role} {name!r} of link {child!r} -> {coarse!r} is not a "
                                         f"predicate of the dictionary")
            if child == coarse:
                raise HierarchyError(f"{where}: predicate {child!r} is its own parent")
            parent[index[child]] = index[coarse]
        for child, coarse in links.items():
            if coarse in links:
                raise HierarchyError(f"{where}: {coarse!r} is the parent of {child!r} but has parent "
                                     f"{links[coarse]!r} itself; the hierarchy has two levels only")
        sources = dict(sources or {})
        unknown = [name for name in sources if name not in links]
        if unknown:
            raise HierarchyError(f"{where}: parent_sources names {unknown[0]!r}, which has no parent link")
        return cls(names=tuple(names), parent=tuple(parent), sources=sources)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], names: Optional[Sequence[str]] = None,
                  where: str = "predicate tree") -> "PredicateHierarchy":
        """From a tree file's JSON object (``predicates``, ``parents``, optional ``parent_sources``)."""
        if not isinstance(data, Mapping):
            raise HierarchyError(f"{where}: expected a JSON object, got {type(data).__name__}")
        stored = data.get("predicates")
        if stored is None:
            if names is None:
                raise HierarchyError(f"{where}: no 'predicates' list and no dataset dictionary to check against")
            stored = names
        tree_names = check_predicate_names(stored, names, where)
        links = data.get("parents")
        if not isinstance(links, Mapping):
            raise HierarchyError(f"{where}: no 'parents' object (fine predicate -> coarse parent); "
                                 f"build the file with tools/build_predicate_tree.py --parents ...")
        sources = data.get("parent_sources") or {}
        if not isinstance(sources, Mapping):
            raise HierarchyError(f"{where}: 'parent_sources' should map predicate names to text")
        return cls.from_links(tree_names, dict(links), dict(sources), where)

    @classmethod
    def from_json(cls, path: str, names: Optional[Sequence[str]] = None) -> "PredicateHierarchy":
        """Read the parent links of a tree file; errors name ``path`` and the offending predicate."""
        return cls.from_dict(read_tree_file(path), names, where=path)

    # ---------------------------------------------------------------- queries
    @property
    def num_predicates(self) -> int:
        """Foreground predicates (background excluded)."""
        return len(self.names) - 1

    def links(self) -> Dict[str, str]:
        """``fine name -> coarse name`` in predicate id order (the JSON form of ``parents``)."""
        return {self.names[p]: self.names[c] for p, c in enumerate(self.parent) if c != p}

    def is_fine(self) -> np.ndarray:
        """(num_predicates + 1,) bool: the predicate has a parent."""
        parent = np.asarray(self.parent)
        return parent != np.arange(len(parent))

    def coarse_ids(self) -> List[int]:
        """Foreground predicates without a parent, by id."""
        return [p for p in range(1, len(self.names)) if self.parent[p] == p]

    def fine_ids(self) -> List[int]:
        """Foreground predicates with a parent, by id."""
        return [p for p in range(1, len(self.names)) if self.parent[p] != p]

    def children(self, coarse: int) -> List[int]:
        """Fine children of ``coarse``, by id."""
        return [p for p in range(1, len(self.names)) if self.parent[p] == coarse and p != coarse]

    def relation_table(self) -> np.ndarray:
        """(P + 1, P + 1) int8: ``table[g, p]`` is how prediction p relates to annotation g.

        One of EXACT (p = g), REFINE (g coarse, p a child of g), COARSEN (g fine, p
        its parent), SIBLING (g fine, p another child of g's parent) and
        CROSS_BRANCH (anything else). Column 0 (background) is BACKGROUND_PREDICTION.
        """
        parent = np.asarray(self.parent)
        ids = np.arange(len(parent))
        g, p = ids[:, None], ids[None, :]
        fine = self.is_fine()
        table = np.full((len(ids), len(ids)), CROSS_BRANCH, dtype=np.int8)
        table[(parent[g] == parent[p]) & fine[g] & fine[p]] = SIBLING
        table[fine[g] & (p == parent[g])] = COARSEN
        table[~fine[g] & fine[p] & (parent[p] == g)] = REFINE
        table[g == p] = EXACT
        table[:, 0] = BACKGROUND_PREDICTION
        return table


# ------------------------------------------------------------- parent-link sources
def links_from_generator_info(path: str) -> Dict[str, str]:
    """``fine -> coarse`` from a synthetic dataset's ``synthetic_vg_info.json`` (``hierarchy.coarse_to_fine``)."""
    if not os.path.isfile(path):
        raise HierarchyError(f"generator info file {path} does not exist")
    with open(path) as f:
        info = json.load(f)
    coarse_to_fine = (info.get("hierarchy") or {}).get("coarse_to_fine")
    if not isinstance(coarse_to_fine, Mapping):
        raise HierarchyError(f"{path}: no 'hierarchy.coarse_to_fine' object (not a synthetic_vg_info.json?)")
    return {child: coarse for coarse, children in coarse_to_fine.items() for child in children}


def links_from_list(spec: str) -> Tuple[Dict[str, str], Dict[str, str]]:
    """``(fine -> coarse, fine -> source text)`` from a ``list:`` spec: a JSON file or inline pairs.

    Inline: ``fine=coarse`` pairs separated by commas (``sitting on=on, wearing=has``). A
    JSON file holds ``{"parents": {...}, "parent_sources": {...}}`` (a tree file works) or
    a plain ``{fine: coarse}`` object.
    """
    if os.path.isfile(spec):
        try:
            with open(spec) as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise HierarchyError(f"{spec} is not valid JSON ({err})") from err
        if not isinstance(data, Mapping):
            raise HierarchyError(f"{spec}: expected a JSON object of parent links")
        links = data.get("parents", data)
        sources = data.get("parent_sources") or {}
        if not isinstance(links, Mapping) or not all(isinstance(v, str) for v in links.values()):
            raise HierarchyError(f"{spec}: 'parents' should map fine predicate names to coarse ones")
        return dict(links), dict(sources)
    if spec.lower().endswith(".json") or os.sep in spec:
        raise HierarchyError(f"parent list file {spec} does not exist")
    links: Dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        child, sep, coarse = item.partition("=")
        if not sep or not child.strip() or not coarse.strip():
            raise HierarchyError(f"parent link {item!r} should read 'fine=coarse'")
        child, coarse = " ".join(child.split()), " ".join(coarse.split())
        if child in links:
            raise HierarchyError(f"predicate {child!r} has two parents in the list ({links[child]!r}, {coarse!r})")
        links[child] = coarse
    return links, {}
