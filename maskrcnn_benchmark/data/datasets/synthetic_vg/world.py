"""The synthetic world: object classes, their looks, and the rules that produce each predicate.

Every name is a real VG150 object or predicate name. Predicates form a two-level
hierarchy: coarse predicates ("on", "has", ...) with fine children ("sitting on",
"wearing", ...), plus optional coarse-only predicates without children. A relation
type is decided by the subject class, the object class and the pair's geometry, so
a model can learn it from pixels; the geometry of siblings can be made to overlap
(``geometry_overlap``) to control how hard the fine distinction is.

Three kinds of relation type (HIERARCHY.md D): fine types (``FINE_RULES``, true
predicate a fine child, annotated with its parent with probability ``coarse_prob``),
genuine-coarse types (``GENUINE_COARSE_RULES``, true predicate a coarse parent
itself, e.g. a cup "on" a bench: no fine child applies, so the right answer is the
coarse one) and coarse-only types (``COARSE_ONLY_RULES``, coarse predicates without
children). Coarse types are always annotated with their true predicate.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

Range = Tuple[float, float]
BoxRanges = Tuple[Range, Range, Range, Range]

SHAPES = ("rect", "ellipse", "triangle", "inv_triangle", "diamond", "cross")
TEXTURES = ("plain", "hstripes", "vstripes", "checker", "dots", "diagonal")

# Colour name (a real VG attribute) -> RGB.
PALETTE: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("black", (25, 25, 25)),
    ("blue", (40, 70, 210)),
    ("brown", (125, 75, 35)),
    ("green", (40, 160, 60)),
    ("grey", (128, 128, 128)),
    ("orange", (245, 140, 25)),
    ("pink", (245, 130, 185)),
    ("purple", (135, 50, 175)),
    ("red", (205, 35, 35)),
    ("tan", (210, 180, 140)),
    ("white", (245, 245, 245)),
    ("yellow", (235, 215, 40)),
)

# Texture -> the real VG attribute that describes it (plain has none).
TEXTURE_ATTRIBUTE: Tuple[Tuple[str, Optional[str]], ...] = (
    ("plain", None),
    ("hstripes", "striped"),
    ("vstripes", "striped"),
    ("checker", "checkered"),
    ("dots", "spotted"),
    ("diagonal", "striped"),
)


@dataclass(frozen=True)
class ObjectClass:
    """One object class and how it is drawn; any two classes differ in at least two of the three looks."""

    name: str
    shape: str
    colour: str
    texture: str


OBJECT_CLASSES: Tuple[ObjectClass, ...] = (
    ObjectClass("bag", "ellipse", "brown", "hstripes"),
    ObjectClass("bed", "diamond", "white", "hstripes"),
    ObjectClass("bench", "rect", "brown", "diagonal"),
    ObjectClass("bike", "diamond", "blue", "dots"),
    ObjectClass("box", "rect", "tan", "dots"),
    ObjectClass("boy", "triangle", "yellow", "checker"),
    ObjectClass("building", "rect", "grey", "vstripes"),
    ObjectClass("car", "ellipse", "red", "plain"),
    ObjectClass("cat", "triangle", "orange", "dots"),
    ObjectClass("chair", "inv_triangle", "brown", "plain"),
    ObjectClass("cup", "inv_triangle", "white", "checker"),
    ObjectClass("dog", "ellipse", "tan", "checker"),
    ObjectClass("door", "cross", "purple", "diagonal"),
    ObjectClass("ear", "triangle", "pink", "plain"),
    ObjectClass("fence", "cross", "white", "vstripes"),
    ObjectClass("hat", "triangle", "black", "vstripes"),
    ObjectClass("man", "rect", "blue", "plain"),
    ObjectClass("phone", "cross", "black", "dots"),
    ObjectClass("shirt", "inv_triangle", "green", "hstripes"),
    ObjectClass("sidewalk", "rect", "pink", "checker"),
    ObjectClass("snow", "ellipse", "white", "dots"),
    ObjectClass("street", "rect", "black", "hstripes"),
    ObjectClass("tail", "cross", "orange", "plain"),
    ObjectClass("tree", "triangle", "green", "diagonal"),
    ObjectClass("umbrella", "diamond", "purple", "plain"),
    ObjectClass("wheel", "ellipse", "black", "diagonal"),
    ObjectClass("window", "diamond", "grey", "checker"),
    ObjectClass("woman", "ellipse", "pink", "vstripes"),
)

PEOPLE = ("boy", "man", "woman")
SEATS = ("bench", "chair")
GROUND = ("sidewalk", "street")
SCENERY = ("building", "fence", "tree")


@dataclass(frozen=True)
class PairLayout:
    """Where subject and object go, as uniform ranges of (x1, y1, x2, y2) in a unit square (y down).

    The pair is later scaled uniformly and moved into its image cell, and mirrored
    left-right at random, so only the relative geometry carries meaning.
    """

    subject: BoxRanges
    object: BoxRanges
    subject_in_front: bool

    def ranges(self) -> np.ndarray:
        """Ranges as an array (2 boxes [subject, object], 4 coordinates, [lo, hi])."""
        return np.array([self.subject, self.object], dtype=np.float64)


@dataclass(frozen=True)
class RelationRule:
    """One relation type: its true predicate, its coarse parent, allowed classes, layout.

    ``parent`` is None for a coarse type (genuine coarse or coarse-only): its true
    predicate is coarse and it is never annotated otherwise.
    """

    predicate: str
    parent: Optional[str]
    subjects: Tuple[str, ...]
    objects: Tuple[str, ...]
    layout: PairLayout


PERSON_BOX: BoxRanges = ((0.32, 0.36), (0.02, 0.06), (0.64, 0.68), (0.94, 0.98))
WIDE_GROUND_BOX: BoxRanges = ((0.0, 0.08), (0.72, 0.76), (0.92, 1.0), (0.9, 0.98))

FINE_RULES: Tuple[RelationRule, ...] = (
    RelationRule("sitting on", "on", PEOPLE + ("cat",), SEATS, PairLayout(
        subject=((0.33, 0.38), (0.1, 0.2), (0.58, 0.64), (0.68, 0.74)),
        object=((0.25, 0.3), (0.5, 0.55), (0.7, 0.75), (0.9, 0.95)), subject_in_front=True)),
    RelationRule("standing on", "on", PEOPLE + ("dog",), GROUND, PairLayout(
        subject=((0.42, 0.46), (0.08, 0.16), (0.54, 0.58), (0.74, 0.78)),
        object=WIDE_GROUND_BOX, subject_in_front=True)),
    RelationRule("parked on", "on", ("bike", "car"), GROUND, PairLayout(
        subject=((0.2, 0.28), (0.45, 0.55), (0.68, 0.78), (0.8, 0.86)),
        object=WIDE_GROUND_BOX, subject_in_front=True)),
    RelationRule("lying on", "on", ("cat", "dog", "man"), ("bed", "bench"), PairLayout(
        subject=((0.2, 0.28), (0.3, 0.36), (0.65, 0.75), (0.52, 0.58)),
        object=((0.1, 0.15), (0.45, 0.5), (0.85, 0.9), (0.85, 0.9)), subject_in_front=True)),
    RelationRule("wearing", "has", PEOPLE, ("hat", "shirt"), PairLayout(
        subject=PERSON_BOX,
        object=((0.4, 0.44), (0.06, 0.12), (0.56, 0.6), (0.3, 0.4)), subject_in_front=False)),
    RelationRule("holding", "has", PEOPLE, ("bag", "cup", "phone", "umbrella"), PairLayout(
        subject=PERSON_BOX,
        object=((0.6, 0.64), (0.35, 0.4), (0.74, 0.8), (0.5, 0.56)), subject_in_front=False)),
    RelationRule("carrying", "has", PEOPLE, ("bag", "box"), PairLayout(
        subject=PERSON_BOX,
        object=((0.56, 0.6), (0.55, 0.6), (0.82, 0.9), (0.78, 0.85)), subject_in_front=False)),
    RelationRule("in front of", "near", ("car", "dog", "man", "woman"), SCENERY, PairLayout(
        subject=((0.3, 0.4), (0.4, 0.5), (0.6, 0.7), (0.9, 0.98)),
        object=((0.1, 0.2), (0.05, 0.15), (0.8, 0.9), (0.6, 0.7)), subject_in_front=True)),
    RelationRule("behind", "near", ("car", "dog", "man", "woman"), SCENERY, PairLayout(
        subject=((0.35, 0.42), (0.15, 0.25), (0.58, 0.65), (0.6, 0.7)),
        object=((0.1, 0.2), (0.35, 0.45), (0.8, 0.9), (0.9, 0.98)), subject_in_front=False)),
    RelationRule("part of", "of", ("door", "wheel", "window"), ("building", "car"), PairLayout(
        subject=((0.15, 0.25), (0.5, 0.55), (0.35, 0.45), (0.7, 0.74)),
        object=((0.05, 0.1), (0.2, 0.3), (0.9, 0.95), (0.75, 0.8)), subject_in_front=True)),
    RelationRule("belonging to", "of", ("ear", "tail"), ("cat", "dog"), PairLayout(
        subject=((0.66, 0.7), (0.2, 0.26), (0.85, 0.92), (0.4, 0.46)),
        object=((0.2, 0.25), (0.3, 0.35), (0.7, 0.75), (0.75, 0.8)), subject_in_front=True)),
    RelationRule("walking in", "in", PEOPLE, ("snow",), PairLayout(
        subject=((0.4, 0.45), (0.1, 0.18), (0.55, 0.6), (0.78, 0.86)),
        object=((0.0, 0.08), (0.45, 0.55), (0.92, 1.0), (0.9, 0.98)), subject_in_front=True)),
    RelationRule("covered in", "in", ("bench", "car"), ("snow",), PairLayout(
        subject=((0.22, 0.28), (0.45, 0.5), (0.72, 0.78), (0.72, 0.78)),
        object=((0.1, 0.15), (0.3, 0.35), (0.85, 0.9), (0.8, 0.85)), subject_in_front=True)),
)

# One per parent of FINE_RULES, in the order ``genuine_coarse_share`` enables them. Each
# differs from its fine siblings in its class pairs (no sibling, nor any other type,
# uses them in either direction) and in its geometry (``blend_sibling_layouts`` leaves
# it alone), so a model can tell "coarse is right here" from "a fine child is right".
GENUINE_COARSE_RULES: Tuple[RelationRule, ...] = (
    RelationRule("on", None, ("cup", "hat", "phone"), ("bed", "bench", "chair"), PairLayout(
        subject=((0.38, 0.44), (0.24, 0.32), (0.56, 0.62), (0.54, 0.6)),
        object=((0.05, 0.12), (0.48, 0.52), (0.88, 0.95), (0.88, 0.95)), subject_in_front=True)),
    RelationRule("has", None, ("bike", "chair"), ("wheel",), PairLayout(
        subject=((0.05, 0.1), (0.15, 0.25), (0.9, 0.95), (0.85, 0.92)),
        object=((0.1, 0.16), (0.6, 0.66), (0.36, 0.42), (0.9, 0.96)), subject_in_front=False)),
    RelationRule("near", None, ("cat", "tree"), ("building", "fence"), PairLayout(
        subject=((0.02, 0.08), (0.3, 0.4), (0.4, 0.45), (0.9, 0.96)),
        object=((0.3, 0.35), (0.15, 0.25), (0.92, 0.98), (0.9, 0.96)), subject_in_front=True)),
    RelationRule("of", None, ("ear",), PEOPLE, PairLayout(
        subject=((0.28, 0.32), (0.08, 0.12), (0.38, 0.42), (0.18, 0.22)),
        object=PERSON_BOX, subject_in_front=True)),
    RelationRule("in", None, ("cat", "cup", "phone"), ("bag", "box"), PairLayout(
        subject=((0.3, 0.35), (0.15, 0.22), (0.62, 0.68), (0.7, 0.78)),
        object=((0.12, 0.18), (0.45, 0.5), (0.82, 0.88), (0.9, 0.96)), subject_in_front=False)),
)

COARSE_ONLY_RULES: Tuple[RelationRule, ...] = (
    RelationRule("above", None, ("umbrella", "window"), ("bench", "car", "door"), PairLayout(
        subject=((0.3, 0.4), (0.05, 0.1), (0.6, 0.7), (0.3, 0.38)),
        object=((0.25, 0.3), (0.5, 0.6), (0.7, 0.75), (0.9, 0.95)), subject_in_front=True)),
    RelationRule("under", None, ("bag", "box", "cat", "dog"), SEATS, PairLayout(
        subject=((0.35, 0.4), (0.6, 0.65), (0.6, 0.65), (0.85, 0.9)),
        object=((0.1, 0.15), (0.2, 0.3), (0.85, 0.9), (0.85, 0.9)), subject_in_front=False)),
    RelationRule("against", None, ("bench", "bike"), ("building", "fence"), PairLayout(
        subject=((0.2, 0.3), (0.5, 0.55), (0.55, 0.65), (0.88, 0.92)),
        object=((0.05, 0.1), (0.2, 0.3), (0.9, 0.95), (0.88, 0.92)), subject_in_front=True)),
    RelationRule("along", None, ("fence", "tree"), GROUND, PairLayout(
        subject=((0.0, 0.05), (0.35, 0.45), (0.95, 1.0), (0.6, 0.65)),
        object=((0.0, 0.05), (0.62, 0.68), (0.95, 1.0), (0.85, 0.95)), subject_in_front=False)),
    RelationRule("with", None, PEOPLE, ("cat", "dog"), PairLayout(
        subject=((0.1, 0.15), (0.1, 0.15), (0.35, 0.4), (0.88, 0.95)),
        object=((0.5, 0.6), (0.55, 0.65), (0.8, 0.9), (0.88, 0.95)), subject_in_front=True)),
)

# Relation types from most to least frequent; the Zipf weights follow this order.
# The genuine-coarse types (named by their coarse predicate) are spread over the
# whole tail rather than bunched: in the default world (no coarse-only types) "on" is
# rank 2 of 18 (head: as on VG, where "on" is the top predicate, a method that
# forgets coarse predicates pays for it in R@K), "near" 7 and "has" 10 (body), "of" 14
# and "in" 17 (tail: a method that favours rare predicates must still answer coarse
# there). Each sits among its own fine siblings, so no parent is all head or all tail.
# Leaving them out keeps the old types' relative order, hence the old world.
POPULARITY_ORDER: Tuple[str, ...] = (
    "wearing", "above", "on", "sitting on", "in front of", "part of", "under", "holding", "near",
    "standing on", "walking in", "against", "has", "behind", "parked on", "carrying", "along", "of",
    "belonging to", "lying on", "with", "in", "covered in",
)

MAX_COARSE_ONLY = len(COARSE_ONLY_RULES)
MAX_GENUINE_COARSE = len(GENUINE_COARSE_RULES)


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """The vocabulary and relation types of one generated dataset.

    ``rules`` are ordered by popularity (most frequent first); ``layout_ranges[i]``
    holds the (possibly sibling-blended) placement ranges of ``rules[i]``, shape (2, 4, 2).
    """

    object_classes: Tuple[ObjectClass, ...]
    predicates: Tuple[str, ...]
    rules: Tuple[RelationRule, ...]
    layout_ranges: Tuple[np.ndarray, ...]

    @property
    def object_names(self) -> Tuple[str, ...]:
        """Object class names in id order (id = position + 1)."""
        return tuple(cls.name for cls in self.object_classes)

    def object_id(self, name: str) -> int:
        """1-based object class id."""
        return self.object_names.index(name) + 1

    def predicate_id(self, name: str) -> int:
        """1-based predicate id."""
        return self.predicates.index(name) + 1

    def coarse_to_fine(self) -> Dict[str, Tuple[str, ...]]:
        """Coarse predicate -> its fine children (alphabetical); coarse-only predicates map to ()."""
        children: Dict[str, Tuple[str, ...]] = {}
        for rule in self.rules:
            if rule.parent is None:
                children.setdefault(rule.predicate, ())
            else:
                children[rule.parent] = tuple(sorted(children.get(rule.parent, ()) + (rule.predicate,)))
        return dict(sorted(children.items()))

    def coarse_predicates(self) -> Tuple[str, ...]:
        """Layer 1: parents and coarse-only predicates, alphabetical."""
        return tuple(self.coarse_to_fine())

    def fine_predicates(self) -> Tuple[str, ...]:
        """Layer 2: predicates that have a coarse parent, alphabetical."""
        return tuple(sorted(rule.predicate for rule in self.rules if rule.parent is not None))

    def genuine_coarse_predicates(self) -> Tuple[str, ...]:
        """Coarse predicates with fine children that are also the true predicate of a type, alphabetical."""
        parents = {rule.parent for rule in self.rules if rule.parent is not None}
        return tuple(sorted(rule.predicate for rule in self.rules if rule.parent is None and rule.predicate in parents))


def blend_sibling_layouts(rules: Tuple[RelationRule, ...], geometry_overlap: float) -> Tuple[np.ndarray, ...]:
    """Widen each fine layout's ranges toward the hull of its siblings' ranges by ``geometry_overlap``.

    0 keeps every layout as designed (siblings well separated); as it grows the
    siblings' ranges start to overlap (from about 0.5 for two siblings), and at 1 all
    children of a parent draw from the same ranges, so only their subject/object
    classes tell them apart. Coarse layouts (genuine coarse and coarse-only) are
    never changed and never part of a hull.
    """
    blended = []
    for rule in rules:
        own = rule.layout.ranges()
        if rule.parent is None:
            blended.append(own)
            continue
        siblings = np.stack([other.layout.ranges() for other in rules if other.parent == rule.parent])
        hull = np.stack([siblings[..., 0].min(axis=0), siblings[..., 1].max(axis=0)], axis=-1)
        blended.append((1.0 - geometry_overlap) * own + geometry_overlap * hull)
    return tuple(blended)


def build_world(num_coarse_only: int, num_genuine_coarse: int, geometry_overlap: float) -> SyntheticWorld:
    """All fine relation types plus the first ``num_genuine_coarse`` genuine-coarse and
    the first ``num_coarse_only`` coarse-only types; with both 0 this is the world without
    genuine coarse relations that the generator made before they existed."""
    if not 0 <= num_coarse_only <= MAX_COARSE_ONLY:
        raise ValueError(f"num_coarse_only must be in [0, {MAX_COARSE_ONLY}], got {num_coarse_only}")
    if not 0 <= num_genuine_coarse <= MAX_GENUINE_COARSE:
        raise ValueError(f"num_genuine_coarse must be in [0, {MAX_GENUINE_COARSE}], got {num_genuine_coarse}")
    chosen = FINE_RULES + GENUINE_COARSE_RULES[:num_genuine_coarse] + COARSE_ONLY_RULES[:num_coarse_only]
    active = {rule.predicate: rule for rule in chosen}
    rules = tuple(active[name] for name in POPULARITY_ORDER if name in active)
    predicates = {rule.predicate for rule in rules} | {rule.parent for rule in rules if rule.parent}
    return SyntheticWorld(
        object_classes=tuple(sorted(OBJECT_CLASSES, key=lambda cls: cls.name)),
        predicates=tuple(sorted(predicates)),
        rules=rules,
        layout_ranges=blend_sibling_layouts(rules, geometry_overlap),
    )


def colour_rgb(colour: str) -> Tuple[int, int, int]:
    """RGB of a palette colour name."""
    return dict(PALETTE)[colour]


def class_attributes(cls: ObjectClass) -> Tuple[str, ...]:
    """Real VG attribute names that describe how a class is drawn (its colour, then its texture)."""
    texture_attribute = dict(TEXTURE_ATTRIBUTE)[cls.texture]
    return (cls.colour,) if texture_attribute is None else (cls.colour, texture_attribute)
