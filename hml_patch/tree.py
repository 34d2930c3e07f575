"""The HML predicate tree: which predicates each training stage learns (HML.md section 2).

A tree assigns every predicate id (1-based, as in the dataset dictionary; id 0 is
background) to exactly one layer; stage k trains on layer k. Three sources:

* ``cluster``: the paper's online clustering of predicate word vectors (cosine to
  the running mean of each group, threshold T_SS, iteration order a choice), then
  pruning (single-member groups go to the last layer) and layering (inside a
  group, the i-th most frequent predicate goes to layer min(i, L));
* ``list``: predicate names per layer, written by hand;
* ``frequency:K``: the K most frequent predicates in layer 1, the rest in layer 2.

A tree may also carry parent links (fine predicate -> coarse parent, the
evaluator's ``PredicateHierarchy``): from the clustering groups (``groups``: each
group's layer-1 member is the parent of the others), from a synthetic dataset's
generator info, or from an explicit list (``parent_source``). A parent must lie
in an earlier layer than its children.

Trees are stored as JSON (``to_json`` / ``from_json``) and read by training and,
through ``TEST.RELATION.PREDICATE_TREE``, by the evaluator's hierarchy metrics.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from maskrcnn_benchmark.structures.predicate_hierarchy import (
    HierarchyError, PredicateHierarchy, check_predicate_names, links_from_generator_info, links_from_list,
    read_tree_file)
from maskrcnn_benchmark.utils.atomic_io import atomic_path

from .word_vectors import embed_names

TREE_FORMAT = "hml-predicate-tree"
TREE_VERSION = 1
BACKGROUND = "__background__"
DEFAULT_THRESHOLD = 0.7  # middle of the paper's T_SS range [0.65, 0.75]
ORDERS = ("index", "frequency")
REST = "*"  # in a list source: every predicate not named in another layer


class TreeError(ValueError):
    """A predicate tree (file or source) is invalid for the given predicates."""


@dataclass
class PredicateTree:
    """Predicate layers of HML, with how they were obtained.

    ``names`` is the dataset's predicate list by id (``names[0]`` is background);
    ``layers[k]`` holds the ids of stage k + 1; ``groups`` the clusters (``cluster``
    source only); ``similarity[id]`` the cosine of the predicate's vector to its
    group's final representation and ``nearest_other[id]`` its highest cosine to
    any other group's; ``counts`` the training counts by id when known.
    """

    names: List[str]
    layers: List[List[int]]
    source: str
    groups: List[List[int]] = field(default_factory=list)
    counts: Optional[List[int]] = None
    threshold: Optional[float] = None
    order: Optional[str] = None
    embedding: Optional[str] = None
    similarity: Dict[int, float] = field(default_factory=dict)
    nearest_other: Dict[int, float] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)
    hierarchy: Optional[PredicateHierarchy] = None

    # ------------------------------------------------------------------ queries
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_predicates(self) -> int:
        """Foreground predicates (background excluded)."""
        return len(self.names) - 1

    def layer_of(self) -> Dict[int, int]:
        """Predicate id -> its layer number (1-based, = the stage that learns it)."""
        return {pid: k + 1 for k, layer in enumerate(self.layers) for pid in layer}

    def stage_predicates(self, stage: int) -> List[int]:
        """Ids learned in ``stage`` (1-based)."""
        self._check_stage(stage)
        return list(self.layers[stage - 1])

    def old_predicates(self, stage: int) -> List[int]:
        """Ids learned before ``stage`` (1-based), in layer order."""
        self._check_stage(stage)
        return [pid for layer in self.layers[:stage - 1] for pid in layer]

    def _check_stage(self, stage: int) -> None:
        if not 1 <= stage <= self.num_layers:
            raise ValueError(f"stage {stage} is outside 1..{self.num_layers} (the tree has {self.num_layers} layers)")

    # --------------------------------------------------------------- validation
    def validate(self, where: str = "predicate tree") -> None:
        """Raise ``TreeError`` (prefixed with ``where``) unless every predicate is in exactly one layer."""
        if not self.names or self.names[0] != BACKGROUND:
            raise TreeError(f"{where}: the predicate list must start with {BACKGROUND!r} (id 0)")
        if not self.layers:
            raise TreeError(f"{where}: the tree has no layers")
        seen: Dict[int, int] = {}
        for k, layer in enumerate(self.layers, start=1):
            if not layer:
                raise TreeError(f"{where}: layer {k} is empty")
            for pid in layer:
                self._check_id(pid, where, f"layer {k}")
                if pid in seen:
                    raise TreeError(f"{where}: predicate {self._label(pid)} is in layer {seen[pid]} and layer {k}")
                seen[pid] = k
        missing = [pid for pid in range(1, len(self.names)) if pid not in seen]
        if missing:
            raise TreeError(f"{where}: predicate {self._label(missing[0])} is in no layer "
                            f"({len(missing)} predicate(s) missing)")
        for g, group in enumerate(self.groups, start=1):
            for pid in group:
                self._check_id(pid, where, f"group {g}")
        if self.counts is not None and len(self.counts) != len(self.names):
            raise TreeError(f"{where}: {len(self.counts)} counts for {len(self.names)} predicates")
        if self.order is not None and self.order not in ORDERS:
            raise TreeError(f"{where}: order {self.order!r} is not one of {ORDERS}")
        if self.hierarchy is not None:
            if list(self.hierarchy.names) != list(self.names):
                raise TreeError(f"{where}: the parent links are over other predicates than the tree's")
            for child, coarse in enumerate(self.hierarchy.parent):
                if coarse != child and seen[coarse] >= seen[child]:
                    raise TreeError(f"{where}: parent {self._label(coarse)} is in layer {seen[coarse]}, not before "
                                    f"its child {self._label(child)} (layer {seen[child]})")

    def _check_id(self, pid: Any, where: str, place: str) -> None:
        if not isinstance(pid, (int, np.integer)) or isinstance(pid, bool) or not 1 <= pid < len(self.names):
            raise TreeError(f"{where}: {place} holds predicate id {pid!r}, not an id in 1..{len(self.names) - 1}")

    def _label(self, pid: int) -> str:
        return f"{pid} ({self.names[pid]!r})"

    # -------------------------------------------------------------------- JSON
    def to_dict(self) -> Dict[str, Any]:
        """The JSON form (ids and names side by side, so a reader needs no dictionary)."""
        def members(ids: Sequence[int]) -> Dict[str, Any]:
            return {"ids": [int(p) for p in ids], "names": [self.names[p] for p in ids]}

        groups = []
        for group in self.groups:
            entry = members(group)
            if self.similarity:
                entry["similarity"] = [round(float(self.similarity[p]), 6) for p in group]
            if self.nearest_other:
                entry["nearest_other_similarity"] = [_rounded(self.nearest_other.get(p)) for p in group]
            groups.append(entry)
        return {
            "format": TREE_FORMAT,
            "version": TREE_VERSION,
            "source": self.source,
            "threshold": self.threshold,
            "order": self.order,
            "embedding": self.embedding,
            "num_layers": self.num_layers,
            "predicates": list(self.names),
            "counts": None if self.counts is None else {self.names[p]: int(self.counts[p])
                                                        for p in range(1, len(self.names))},
            "layers": [members(layer) for layer in self.layers],
            "groups": groups,
            **self._hierarchy_dict(),
            "metadata": self.metadata,
        }

    def _hierarchy_dict(self) -> Dict[str, Any]:
        if self.hierarchy is None:
            return {}
        out: Dict[str, Any] = {"parents": self.hierarchy.links()}
        if self.hierarchy.sources:
            out["parent_sources"] = dict(self.hierarchy.sources)
        return out

    def to_json(self, path: str) -> None:
        """Write the tree to ``path`` atomically."""
        self.validate(path)
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write(_compact_json(self.to_dict()) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], names: Optional[Sequence[str]] = None,
                  where: str = "predicate tree") -> "PredicateTree":
        """Parse the JSON form; ``names`` (the dataset's predicate list, background first) is checked against it.

        Layers and groups may give ``ids``, ``names`` or both (then they must agree),
        or be plain lists of names; ``predicates`` may be left out when ``names`` is given.
        """
        if not isinstance(data, Mapping):
            raise TreeError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("format", TREE_FORMAT) != TREE_FORMAT:
            raise TreeError(f"{where}: format is {data.get('format')!r}, expected {TREE_FORMAT!r}")
        tree_names = _tree_names(data, names, where)
        index = {name: pid for pid, name in enumerate(tree_names)}
        layers = [sorted(_member_ids(entry, tree_names, index, where, f"layer {k}"))
                  for k, entry in enumerate(_required_list(data, "layers", where), start=1)]
        groups, similarity, nearest = [], {}, {}
        for g, entry in enumerate(data.get("groups") or [], start=1):
            ids = _member_ids(entry, tree_names, index, where, f"group {g}")
            groups.append(ids)
            if isinstance(entry, Mapping):
                similarity.update(_aligned_values(entry, "similarity", ids, where, g))
                nearest.update(_aligned_values(entry, "nearest_other_similarity", ids, where, g))
        try:
            hierarchy = PredicateHierarchy.from_dict(data, tree_names, where) if "parents" in data else None
        except HierarchyError as err:
            raise TreeError(str(err)) from err
        tree = cls(names=tree_names, layers=layers, source=str(data.get("source", "list")), groups=groups,
                   counts=_counts(data.get("counts"), tree_names, where), threshold=data.get("threshold"),
                   order=data.get("order"), embedding=data.get("embedding"), similarity=similarity,
                   nearest_other=nearest, metadata=dict(data.get("metadata") or {}), hierarchy=hierarchy)
        tree.validate(where)
        return tree

    @classmethod
    def from_json(cls, path: str, names: Optional[Sequence[str]] = None) -> "PredicateTree":
        """Read a tree file; errors name ``path`` and the offending predicate."""
        try:
            data = read_tree_file(path)
        except HierarchyError as err:
            raise TreeError(str(err)) from err
        return cls.from_dict(data, names, where=path)

    # ------------------------------------------------------------------ report
    def report(self) -> List[str]:
        """Human-readable lines: settings, groups (members, counts, similarities), layer sizes."""
        lines = [f"Predicate tree: source={self.source}, {self.num_layers} layers, {self.num_predicates} predicates"
                 + "".join(f", {key}={value}" for key, value in (("threshold", self.threshold),
                                                                   ("order", self.order),
                                                                   ("embedding", self.embedding))
                           if value is not None)]
        layer_of = self.layer_of()
        if self.groups:
            multi = [g for g in self.groups if len(g) > 1]
            singles = [g[0] for g in self.groups if len(g) == 1]
            lines.append(f"Groups: {len(self.groups)} ({len(multi)} with several predicates, "
                         f"{len(singles)} single -> layer {self.num_layers})")
            for g, group in enumerate(self.groups, start=1):
                if len(group) > 1:
                    members = ", ".join(self._describe(p, layer_of, nearest=False) for p in self._by_count(group))
                    lines.append(f"  group {g} ({len(group)}): {members}")
            if singles:
                lines.append("  single: " + ", ".join(self._describe(p, layer_of, nearest=True)
                                                      for p in self._by_count(singles)))
        for k, layer in enumerate(self.layers, start=1):
            total = "" if self.counts is None else f", {sum(self.counts[p] for p in layer)} relations"
            lines.append(f"Layer {k}: {len(layer)} predicates{total}: "
                         + ", ".join(self.names[p] for p in self._by_count(layer)))
        lines.append("Layer sizes: " + " / ".join(str(len(layer)) for layer in self.layers))
        if self.hierarchy is not None:
            lines.append(f"Parents ({len(self.hierarchy.fine_ids())} fine predicates):")
            for coarse in self.hierarchy.coarse_ids():
                children = [self.names[p] for p in self.hierarchy.children(coarse)]
                lines.append(f"  {self.names[coarse]}: " + (", ".join(children) if children else "(no children)"))
        return lines

    def _by_count(self, ids: Sequence[int]) -> List[int]:
        if self.counts is None:
            return sorted(ids)
        return sorted(ids, key=lambda p: (-self.counts[p], p))

    def _describe(self, pid: int, layer_of: Dict[int, int], nearest: bool) -> str:
        parts = [] if self.counts is None else [str(self.counts[pid])]
        parts.append(f"L{layer_of[pid]}")
        if nearest and pid in self.nearest_other:
            parts.append(f"nearest group {self.nearest_other[pid]:.3f}")
        elif not nearest and pid in self.similarity:
            parts.append(f"sim {self.similarity[pid]:.3f}")
        return f"{self.names[pid]} [{', '.join(parts)}]"


# ---------------------------------------------------------------- JSON helpers
def _compact_json(value: Any, indent: int = 0) -> str:
    """Indented JSON with every list of plain values on one line (readable, hand-editable tree files)."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        items = [f"{pad} {json.dumps(k)}: {_compact_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{pad} {_compact_json(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 6)


def _required_list(data: Mapping[str, Any], key: str, where: str) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise TreeError(f"{where}: {key!r} should be a list, got {type(value).__name__}")
    return value


def _tree_names(data: Mapping[str, Any], names: Optional[Sequence[str]], where: str) -> List[str]:
    """The tree's predicate list, checked against the dataset's ``names`` when both exist."""
    stored = data.get("predicates")
    if stored is None:
        if names is None:
            raise TreeError(f"{where}: no 'predicates' list in the tree and no dataset dictionary to check against")
        return list(names)
    try:
        return check_predicate_names(stored, names, where)
    except HierarchyError as err:
        raise TreeError(str(err)) from err


def _member_ids(entry: Any, names: Sequence[str], index: Mapping[str, int], where: str, place: str) -> List[int]:
    """Ids of a layer or group given as ``{"ids", "names"}`` or a plain list of names."""
    if isinstance(entry, list):
        entry = {"names": entry}
    if not isinstance(entry, Mapping) or not ({"ids", "names"} & entry.keys()):
        raise TreeError(f"{where}: {place} should list 'ids' and/or 'names'")
    from_names = None
    if "names" in entry:
        unknown = [n for n in entry["names"] if n not in index or index[n] == 0]
        if unknown:
            raise TreeError(f"{where}: {place} names predicate {unknown[0]!r}, which is not in the dictionary")
        from_names = [index[n] for n in entry["names"]]
    if "ids" not in entry:
        return from_names
    ids = list(entry["ids"])
    for pid in ids:
        if not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid < len(names):
            raise TreeError(f"{where}: {place} holds predicate id {pid!r}, not an id in 1..{len(names) - 1}")
    if from_names is not None:
        if len(from_names) != len(ids):
            raise TreeError(f"{where}: {place} lists {len(ids)} ids but {len(from_names)} names")
        for pid, name_id in zip(ids, from_names):
            if pid != name_id:
                raise TreeError(f"{where}: {place} pairs id {pid} with name {names[name_id]!r}, "
                                f"but id {pid} is {names[pid]!r}")
    return ids


def _aligned_values(entry: Mapping[str, Any], key: str, ids: List[int], where: str, g: int) -> Dict[int, float]:
    values = entry.get(key)
    if values is None:
        return {}
    if len(values) != len(ids):
        raise TreeError(f"{where}: group {g} has {len(values)} {key} values for {len(ids)} predicates")
    return {pid: float(v) for pid, v in zip(ids, values) if v is not None}


def _counts(stored: Any, names: Sequence[str], where: str) -> Optional[List[int]]:
    if stored is None:
        return None
    missing = [n for n in names[1:] if n not in stored]
    if missing:
        raise TreeError(f"{where}: 'counts' has no count for predicate {missing[0]!r}")
    return [0] + [int(stored[n]) for n in names[1:]]


# -------------------------------------------------------------------- builders
def _check_names(names: Sequence[str]) -> List[str]:
    names = list(names)
    if not names or names[0] != BACKGROUND:
        raise TreeError(f"predicate names must be the dataset's list by id with {BACKGROUND!r} first")
    if len(set(names)) != len(names):
        raise TreeError("predicate names must be unique")
    return names


def _check_counts(counts: Sequence[int], names: Sequence[str]) -> List[int]:
    if len(counts) != len(names):
        raise TreeError(f"{len(counts)} counts for {len(names)} predicate names (background included)")
    return [int(c) for c in counts]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def cluster_predicates(vectors: np.ndarray, order: Sequence[int], threshold: float) -> List[List[int]]:
    """The paper's one-pass online clustering (Eq. 1-2) of rows of ``vectors`` visited in ``order``.

    A row joins the group whose representation (the running mean of its members'
    vectors) has the highest cosine with it when that cosine is >= ``threshold``
    (the first such group on ties); otherwise it opens a new group. Groups are
    returned in opening order, members in joining order.
    """
    groups: List[List[int]] = []
    sums: List[np.ndarray] = []
    for row in order:
        v = vectors[row]
        sims = [_cosine(s / len(g), v) for s, g in zip(sums, groups)]
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and sims[best] >= threshold:
            groups[best].append(row)
            sums[best] = sums[best] + v
        else:
            groups.append([row])
            sums.append(np.array(v, dtype=np.float64))
    return groups


def layer_groups(groups: Sequence[Sequence[int]], counts: Sequence[int], num_layers: int) -> List[List[int]]:
    """Pruning and layering: single groups to the last layer; in a group the i-th most
    frequent predicate (ties: lower id first) goes to layer min(i, ``num_layers``)."""
    layers: List[List[int]] = [[] for _ in range(num_layers)]
    for group in groups:
        if len(group) == 1:
            layers[-1].append(group[0])
            continue
        for rank, pid in enumerate(sorted(group, key=lambda p: (-counts[p], p))):
            layers[min(rank, num_layers - 1)].append(pid)
    return [sorted(layer) for layer in layers]


def build_tree_cluster(names: Sequence[str], counts: Sequence[int], vectors: Mapping[str, np.ndarray],
                       threshold: float = DEFAULT_THRESHOLD, order: str = "index", num_layers: int = 2,
                       allow_missing_words: bool = False, embedding: Optional[str] = None) -> PredicateTree:
    """The ``cluster`` tree from word vectors (``word -> vector``; multi-word names use the mean).

    ``order`` is ``index`` (dictionary id order) or ``frequency`` (descending count,
    ties by id); ``embedding`` is recorded in the tree (e.g. the GLOVE_DIR value).
    """
    names = _check_names(names)
    counts = _check_counts(counts, names)
    if order not in ORDERS:
        raise TreeError(f"order should be one of {ORDERS}, got {order!r}")
    if num_layers < 1:
        raise TreeError(f"num_layers should be >= 1, got {num_layers}")
    if not -1.0 <= threshold <= 1.0:
        raise TreeError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    ids = list(range(1, len(names)))
    embedded = embed_names([names[p] for p in ids], vectors, allow_missing_words)
    table = np.concatenate([np.zeros((1, embedded.shape[1])), embedded])
    zero = [names[p] for p in ids if not np.linalg.norm(table[p]) > 0]
    if zero:
        raise TreeError(f"predicate {zero[0]!r} has a zero word vector; its cosine is undefined")
    visit = ids if order == "index" else sorted(ids, key=lambda p: (-counts[p], p))
    groups = cluster_predicates(table, visit, threshold)
    layers = layer_groups(groups, counts, num_layers)
    empty = [k + 1 for k, layer in enumerate(layers) if not layer]
    if empty:
        raise TreeError(f"layer {empty[0]} of {num_layers} would be empty at threshold {threshold}: no group has "
                        f"{empty[0]} predicates; use fewer layers or another threshold")
    means = [table[g].mean(axis=0) for g in groups]
    similarity, nearest = {}, {}
    for g, group in enumerate(groups):
        for pid in group:
            similarity[pid] = _cosine(means[g], table[pid])
            others = [_cosine(m, table[pid]) for h, m in enumerate(means) if h != g]
            if others:
                nearest[pid] = max(others)
    return PredicateTree(names=names, layers=layers, source="cluster", groups=groups, counts=counts,
                         threshold=float(threshold), order=order, embedding=embedding, similarity=similarity,
                         nearest_other=nearest)


def build_tree_from_lists(names: Sequence[str], layer_names: Sequence[Sequence[str]],
                          counts: Optional[Sequence[int]] = None) -> PredicateTree:
    """The ``list`` tree: predicate names per layer; one layer may be ``["*"]`` (= all others)."""
    names = _check_names(names)
    index = {name: pid for pid, name in enumerate(names)}
    rest_layers = [k for k, layer in enumerate(layer_names) if REST in layer]
    if len(rest_layers) > 1 or any(len(layer_names[k]) != 1 for k in rest_layers):
        raise TreeError(f"{REST!r} must be alone in its layer and used at most once")
    layers: List[List[int]] = []
    for k, layer in enumerate(layer_names, start=1):
        if rest_layers and k - 1 == rest_layers[0]:
            layers.append([])
            continue
        unknown = [n for n in layer if n not in index or index[n] == 0]
        if unknown:
            raise TreeError(f"layer {k} names predicate {unknown[0]!r}, which is not in the dictionary")
        layers.append(sorted(index[n] for n in layer))
    if rest_layers:
        named = {pid for layer in layers for pid in layer}
        layers[rest_layers[0]] = [pid for pid in range(1, len(names)) if pid not in named]
    tree = PredicateTree(names=names, layers=layers, source="list",
                         counts=None if counts is None else _check_counts(counts, names))
    tree.validate("list source")
    return tree


def build_tree_frequency(names: Sequence[str], counts: Sequence[int], k: int) -> PredicateTree:
    """The ``frequency:K`` tree: the ``k`` most frequent predicates (ties: lower id) in layer 1, the rest in 2."""
    names = _check_names(names)
    counts = _check_counts(counts, names)
    if not 1 <= k < len(names) - 1:
        raise TreeError(f"frequency:K needs 1 <= K < {len(names) - 1} (the number of predicates), got {k}")
    ranked = sorted(range(1, len(names)), key=lambda p: (-counts[p], p))
    return PredicateTree(names=names, layers=[sorted(ranked[:k]), sorted(ranked[k:])],
                         source=f"frequency:{k}", counts=counts, order="frequency")


def parse_layer_lists(spec: str) -> List[List[str]]:
    """Names per layer from a ``list:`` spec: a file or inline text.

    Inline: layers separated by ``;``, names by ``,`` (``on,has,near;*``). A ``.json``
    file holds a list of name lists, or an object with ``layers`` (as in a tree file);
    another file holds one layer per line, names separated by commas (``#`` starts a comment).
    """
    if os.path.isfile(spec):
        with open(spec) as f:
            text = f.read()
        if spec.lower().endswith(".json"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise TreeError(f"{spec} is not valid JSON ({err})") from err
            layers = data.get("layers") if isinstance(data, Mapping) else data
            if not isinstance(layers, list):
                raise TreeError(f"{spec}: expected a list of layers or an object with 'layers'")
            return [list(layer["names"]) if isinstance(layer, Mapping) else list(layer) for layer in layers]
        lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        return [_split_names(line) for line in lines if line]
    if os.sep in spec or spec.lower().endswith((".json", ".txt")):
        raise TreeError(f"list source file {spec} does not exist")
    return [_split_names(layer) for layer in spec.split(";") if layer.strip()]


def _split_names(text: str) -> List[str]:
    return [" ".join(name.split()) for name in text.split(",") if name.strip()]


def build_tree(source: str, names: Sequence[str], counts: Optional[Sequence[int]] = None,
               vectors: Optional[Mapping[str, np.ndarray]] = None, threshold: float = DEFAULT_THRESHOLD,
               order: str = "index", num_layers: int = 2, allow_missing_words: bool = False,
               embedding: Optional[str] = None) -> PredicateTree:
    """Build a tree from a source string: ``cluster``, ``list:<file or inline>`` or ``frequency:K``."""
    kind, _, argument = source.partition(":")
    if kind == "cluster" and not argument:
        if vectors is None or counts is None:
            raise TreeError("the cluster source needs word vectors and predicate counts")
        return build_tree_cluster(names, counts, vectors, threshold, order, num_layers, allow_missing_words,
                                  embedding)
    if kind == "list" and argument:
        return build_tree_from_lists(names, parse_layer_lists(argument), counts)
    if kind == "frequency" and argument:
        if counts is None:
            raise TreeError("the frequency source needs predicate counts")
        try:
            k = int(argument)
        except ValueError:
            raise TreeError(f"frequency:K needs an integer K, got {argument!r}") from None
        return build_tree_frequency(names, counts, k)
    raise TreeError(f"unknown tree source {source!r}; expected 'cluster', 'list:<file or inline>' or 'frequency:K'")


# ----------------------------------------------------------------- parent links
def links_from_groups(tree: PredicateTree) -> Dict[str, str]:
    """``fine -> coarse`` from a clustered tree: in each group, the member in the first layer any
    member reaches is the parent of the members in later layers (singletons get no parent)."""
    if not tree.groups:
        raise TreeError(f"the 'groups' parent source needs a clustered tree; this one's source is {tree.source!r}")
    layer_of = tree.layer_of()
    links: Dict[str, str] = {}
    for group in tree.groups:
        top = min(layer_of[p] for p in group)
        heads = [p for p in group if layer_of[p] == top]
        if len(group) > 1 and len(heads) == 1:
            links.update({tree.names[p]: tree.names[heads[0]] for p in group if p != heads[0]})
    return links


def with_parents(tree: PredicateTree, source: str) -> PredicateTree:
    """``tree`` with parent links from ``source``: ``groups``, ``info:<synthetic_vg_info.json>`` or
    ``list:<JSON file or inline fine=coarse pairs>``; raises TreeError naming the bad link."""
    kind, _, argument = source.partition(":")
    sources: Dict[str, str] = {}
    try:
        if kind == "groups" and not argument:
            links = links_from_groups(tree)
        elif kind == "info" and argument:
            links = links_from_generator_info(argument)
        elif kind == "list" and argument:
            links, sources = links_from_list(argument)
        else:
            raise TreeError(f"unknown parent source {source!r}; expected 'groups', 'info:<file>' or "
                            f"'list:<file or inline>'")
        hierarchy = PredicateHierarchy.from_links(tree.names, links, sources, where=f"parent source {source}")
    except HierarchyError as err:
        raise TreeError(str(err)) from err
    tree.hierarchy = hierarchy
    tree.validate(f"parent source {source}")
    return tree
