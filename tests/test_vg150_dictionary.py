"""The real VG150 dictionary file read through ``load_info`` and ``load_label_counts``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest

from maskrcnn_benchmark.data.datasets.visual_genome import load_info, load_label_counts
from shared_data import require_shared

PREDICATES = [
    "above", "across", "against", "along", "and", "at", "attached to", "behind", "belonging to", "between",
    "carrying", "covered in", "covering", "eating", "flying in", "for", "from", "growing on", "hanging from",
    "has", "holding", "in", "in front of", "laying on", "looking at", "lying on", "made of", "mounted on",
    "near", "of", "on", "on back of", "over", "painted on", "parked on", "part of", "playing", "riding", "says",
    "sitting on", "standing on", "to", "under", "using", "walking in", "walking on", "watching", "wearing",
    "wears", "with",
]
TOTAL_PREDICATE_COUNT = 2_046_006


@pytest.fixture(scope="module")
def dict_file() -> str:
    return str(require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json"))


@pytest.fixture(scope="module")
def raw(dict_file: str) -> Dict[str, Any]:
    return json.loads(Path(dict_file).read_text())


def test_sizes_with_background(dict_file: str) -> None:
    classes, predicates, attributes = load_info(dict_file)
    assert (len(classes), len(predicates), len(attributes)) == (151, 51, 201)
    assert classes[0] == predicates[0] == attributes[0] == "__background__"


def test_sizes_without_background(dict_file: str) -> None:
    classes, predicates, attributes = load_info(dict_file, add_bg=False)
    assert (len(classes), len(predicates), len(attributes)) == (150, 50, 200)
    assert "__background__" not in classes + predicates + attributes
    assert predicates == PREDICATES


def test_predicate_ids_are_alphabetical(dict_file: str) -> None:
    _, predicates, _ = load_info(dict_file)
    assert predicates[1:] == PREDICATES == sorted(PREDICATES)
    assert (predicates[1], predicates[31], predicates[50]) == ("above", "on", "with")


@pytest.mark.parametrize("table, idx_key", [(0, "idx_to_label"), (1, "idx_to_predicate"), (2, "idx_to_attribute")])
def test_position_is_label_id(table: int, idx_key: str, dict_file: str, raw: Dict[str, Any]) -> None:
    names = load_info(dict_file)[table]
    assert {str(i): name for i, name in enumerate(names) if i > 0} == raw[idx_key]


def test_known_class_and_attribute_ids(dict_file: str, raw: Dict[str, Any]) -> None:
    classes, _, attributes = load_info(dict_file)
    assert classes[1] == "airplane" and classes.index("kite") == raw["label_to_idx"]["kite"] == 69
    assert attributes[1] == "white" and attributes[2] == "black"


def test_counts_align_with_names(dict_file: str, raw: Dict[str, Any]) -> None:
    names = load_info(dict_file)
    counts = load_label_counts(dict_file)
    for table, count_key, count in zip(names, ("object_count", "predicate_count", "attribute_count"), counts):
        assert len(count) == len(table) and count[0] == 0
        assert count[1:] == [raw[count_key][name] for name in table[1:]]
        assert all(c > 0 for c in count[1:])
    assert sum(counts[1]) == TOTAL_PREDICATE_COUNT
    assert counts[1][31] == raw["predicate_count"]["on"] == max(counts[1])


def test_counts_without_background(dict_file: str) -> None:
    _, predicate_counts, _ = load_label_counts(dict_file, add_bg=False)
    assert len(predicate_counts) == 50 and sum(predicate_counts) == TOTAL_PREDICATE_COUNT
