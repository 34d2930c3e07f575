"""The synthetic PSG world: which classes take part in each of the 56 predicates, and how they look.

Every name is a real PSG class or predicate. Relation type p (one per predicate) has a
(subject class, object class) pair that exactly one other type shares (p and p + 28),
and borrows the pair geometry of a synthetic VG relation type, different for the two:
the classes narrow a relation down to two predicates, the layout decides between them,
so a relation head must look at the geometry (a frequency prior alone gets half), and
an image classifier must see both the objects and how they are placed.
Objects of some types are stuff (road, snow, grass ...); every image also gets one or
two large stuff regions (road, snow, building, sky) behind everything.
"""
from dataclasses import dataclass
from typing import Dict, Tuple

from ..psg_vocabulary import NUM_POSITIONAL, PREDICATES, STUFF_CLASSES, THING_CLASSES
from ..synthetic_vg.world import (COARSE_ONLY_RULES, FINE_RULES, GENUINE_COARSE_RULES, PALETTE, SHAPES, TEXTURES,
                                  ObjectClass, PairLayout)

SUBJECT_THINGS = ("person", "bicycle", "car", "motorcycle", "bus", "bird", "cat", "dog", "horse", "umbrella",
                  "backpack", "skateboard", "bottle", "chair")
OBJECT_ONLY_THINGS = ("bench", "frisbee", "surfboard", "cup", "laptop", "kite")
RELATION_STUFF = ("road", "snow", "grass-merged", "sea", "wall-other-merged", "pavement-merged")
BACKGROUND_STUFF = ("road", "snow", "building-other-merged", "sky-other-merged")
LAYOUTS: Tuple[PairLayout, ...] = tuple(rule.layout for rule in FINE_RULES + GENUINE_COARSE_RULES + COARSE_ONLY_RULES)

# Predicates from most to least frequent, PSG-like: the positional ones first, then the
# action predicates that head PSG's histogram, then the rest in index order.
_HEAD = (3, 2, 0, 1, 4, 5, 14, 21, 11, 23, 16, 20, 22, 46, 47)
POPULARITY_ORDER: Tuple[int, ...] = _HEAD + tuple(p for p in range(len(PREDICATES)) if p not in _HEAD)

CATEGORIES = THING_CLASSES + STUFF_CLASSES


@dataclass(frozen=True)
class PSGRelationType:
    """One relation type: its 0-based predicate, subject and object category ids, layout, positional twin."""

    predicate: int
    subject: int
    object: int
    layout: PairLayout
    positional: int


def category_id(name: str) -> int:
    """0-based PSG category id (things 0..79, stuff 80..132)."""
    return CATEGORIES.index(name)


def is_thing(category: int) -> bool:
    return category < len(THING_CLASSES)


def relation_types() -> Tuple[PSGRelationType, ...]:
    """The 56 types in predicate order; q = p mod 28 gives the pair (subject s = q mod 14, object
    (s + 1 + 3 (q // 14)) mod 26), distinct for every q; the layouts of p and p + 28 differ."""
    objects = SUBJECT_THINGS + OBJECT_ONLY_THINGS + RELATION_STUFF
    types = []
    for p in range(len(PREDICATES)):
        q = p % (len(PREDICATES) // 2)
        s = q % len(SUBJECT_THINGS)
        o = (s + 1 + 3 * (q // len(SUBJECT_THINGS))) % len(objects)
        layout = LAYOUTS[p % len(LAYOUTS)]
        types.append(PSGRelationType(predicate=p, subject=category_id(SUBJECT_THINGS[s]),
                                     object=category_id(objects[o]), layout=layout,
                                     positional=1 if layout.subject_in_front else 2))
    return tuple(types)


def styles() -> Dict[int, ObjectClass]:
    """How every category that can appear is drawn: things in distinct shape/colour/texture, stuff as rectangles."""
    things = SUBJECT_THINGS + OBJECT_ONLY_THINGS
    looks = {category_id(name): ObjectClass(name, SHAPES[i % len(SHAPES)], PALETTE[(5 * i) % len(PALETTE)][0],
                                            TEXTURES[(i + i // len(SHAPES)) % len(TEXTURES)])
             for i, name in enumerate(things)}
    stuff = tuple(dict.fromkeys(RELATION_STUFF + BACKGROUND_STUFF))
    for i, name in enumerate(stuff):
        looks[category_id(name)] = ObjectClass(name, "rect", PALETTE[(7 * i + 3) % len(PALETTE)][0],
                                               TEXTURES[(i + 1) % len(TEXTURES)])
    return looks


def is_positional(predicate: int) -> bool:
    return predicate < NUM_POSITIONAL
