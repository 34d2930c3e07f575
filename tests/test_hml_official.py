"""Official mode's constants: the authors' weight vectors and stage-1 list, looked up by predicate name."""
import json

import pytest
import torch

from hml_patch.official import official_class_weights, official_constants, official_layer_lists
from tests.shared_data import require_shared

OFFICIAL_COARSE = ["above", "behind", "has", "holding", "in", "near", "of", "on", "wearing", "with"]


def vg150_predicates():
    with open(require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json")) as f:
        idx_to_predicate = json.load(f)["idx_to_predicate"]
    return ["__background__"] + [idx_to_predicate[str(i)] for i in range(1, len(idx_to_predicate) + 1)]


def test_vg150_gets_the_authors_vectors_unchanged():
    names = vg150_predicates()
    constants = official_constants()
    assert constants["predicate_names"] == names
    for stage in (1, 2):
        weights = official_class_weights(names, stage)
        assert weights.tolist() == torch.tensor(constants["relation_ce_class_weights"][stage - 1]).tolist()
    stage1 = official_class_weights(names, 1)
    assert sorted(names[i] for i in torch.nonzero(stage1[1:]).flatten().add(1).tolist()) == OFFICIAL_COARSE
    assert bool((official_class_weights(names, 2) > 0).all())
    assert official_layer_lists(names) == [OFFICIAL_COARSE, ["*"]]


def test_other_datasets_are_looked_up_by_name():
    names = ["__background__", "on", "sitting on", "has", "wearing"]
    vg150 = official_constants()["predicate_names"]
    weights = official_class_weights(names, 2)
    full = official_constants()["relation_ce_class_weights"][1]
    assert weights.tolist() == torch.tensor([full[0]] + [full[vg150.index(n)] for n in names[1:]]).tolist()
    assert official_layer_lists(names) == [["has", "on", "wearing"], ["*"]]


def test_unknown_predicates_and_a_third_stage_are_refused():
    with pytest.raises(ValueError, match="'flying over'"):
        official_class_weights(["__background__", "on", "flying over"], 1)
    with pytest.raises(ValueError, match="stage 3"):
        official_class_weights(["__background__", "on"], 3)
    with pytest.raises(ValueError, match="none of the authors' stage-1 predicates"):
        official_layer_lists(["__background__", "sitting on"])
