"""HML predicate tree: clustering, pruning and layering on the real VG150 dictionary with
hand-made word vectors, the list and frequency sources, the JSON file and its errors."""
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from hml_patch.tree import (
    PredicateTree,
    TreeError,
    build_tree,
    build_tree_cluster,
    build_tree_frequency,
    build_tree_from_lists,
    parse_layer_lists,
    with_parents,
)
from hml_patch.word_vectors import MissingWordError, phrase_vector
from maskrcnn_benchmark.data.datasets.visual_genome import load_info, load_label_counts
from tests.shared_data import require_shared

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_TREE = REPO_ROOT / "configs" / "hml" / "vg150_official_tree.json"
OFFICIAL_COARSE = {"above", "behind", "has", "holding", "in", "near", "of", "on", "wearing", "with"}

# Toy word vectors. Every word of the VG150 predicate names gets its own unit axis, except
# two planes of designed words (angles measured in the plane):
#   plane (0, 1): across 0 deg, holding 40 deg, near 80 deg
#   plane (2, 3): has 0 deg, wearing 10 deg, wears 20 deg
# None of these six words occurs in a multi-word predicate. A predicate is the mean of its
# word vectors, so two different predicates made of axis words have cosine
# |shared words| / sqrt(n1 n2) <= 1 / sqrt(2) = 0.707 (e.g. "of" vs "part of"), below the
# threshold 0.75 used here; the designed words are orthogonal to every other predicate.
# Only the designed words can therefore group, and a group's representation is the mean of
# its members (the running mean), i.e. the bisector direction for unit vectors.
THRESHOLD = 0.75
PLANES = {"across": (0, 0.0), "holding": (0, 40.0), "near": (0, 80.0),
          "has": (2, 0.0), "wearing": (2, 10.0), "wears": (2, 20.0)}


@pytest.fixture(scope="module")
def vg150():
    dict_file = require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json")
    names = load_info(str(dict_file))[1]
    counts = load_label_counts(str(dict_file))[1]
    return names, counts


@pytest.fixture(scope="module")
def toy_vectors(vg150):
    names, _ = vg150
    words = sorted({w for name in names[1:] for w in name.split()} - set(PLANES))
    dim = 4 + len(words)
    vectors = {}
    for word, (axis, degrees) in PLANES.items():
        v = np.zeros(dim)
        v[axis], v[axis + 1] = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        vectors[word] = v
    for i, word in enumerate(words):
        vectors[word] = np.eye(dim)[4 + i]
    return vectors


def ids(names, *wanted):
    return sorted(names.index(w) for w in wanted)


def multi_groups(tree):
    return sorted(sorted(tree.names[p] for p in g) for g in tree.groups if len(g) > 1)


def test_index_order_grouping_matches_hand_computation(vg150, toy_vectors):
    names, counts = vg150
    tree = build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD, order="index")
    # Index order visits across (id 2), holding (21), near (29):
    #   across opens G; holding: cos(40) = 0.766 >= 0.75 -> joins, G's mean now points at 20 deg;
    #   near: cos(80 - 20) = 0.5 < 0.75 -> opens its own group (a single group, although
    #   cos(near, holding) = cos(40) would pass: the group mean is what counts).
    # has (20), wearing (48), wears (49): cos(10) = 0.985 -> joins, mean at 5 deg;
    #   wears: cos(15) = 0.966 -> joins.
    assert multi_groups(tree) == [["across", "holding"], ["has", "wearing", "wears"]]
    assert len(tree.groups) == 2 + (50 - 5)  # every other predicate is a group of its own
    # Layering: in a group the most frequent goes to layer 1 (holding 42722 > across 1996,
    # has 277936), every lower rank to layer 2; single groups (on, near, ...) go to layer 2.
    assert tree.layers[0] == ids(names, "has", "holding")
    assert len(tree.layers[1]) == 48 and names.index("on") in tree.layers[1]
    # Similarity to the group's final mean: across and holding at +-20 deg of the bisector,
    # has and wears at +-10 deg of the 10-deg mean, wearing on it.
    sim = {names[p]: s for p, s in tree.similarity.items()}
    assert sim["across"] == pytest.approx(np.cos(np.radians(20)))
    assert sim["holding"] == pytest.approx(np.cos(np.radians(20)))
    assert sim["has"] == pytest.approx(np.cos(np.radians(10)))
    assert sim["wearing"] == pytest.approx(1.0)
    assert sim["on"] == pytest.approx(1.0)
    # near's closest other group is {across, holding}, at 80 - 20 = 60 deg.
    assert tree.nearest_other[names.index("near")] == pytest.approx(0.5)


def test_frequency_order_changes_the_grouping(vg150, toy_vectors):
    names, counts = vg150
    tree = build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD, order="frequency")
    # Descending counts visit near (96589), then holding (42722), then across (1996):
    #   near opens G; holding: cos(40) -> joins, mean at 60 deg; across: cos(60) = 0.5 -> alone.
    assert multi_groups(tree) == [["has", "wearing", "wears"], ["holding", "near"]]
    assert tree.layers[0] == ids(names, "has", "near")
    assert tree.order == "frequency"


def test_threshold_and_three_layers(vg150, toy_vectors):
    names, counts = vg150
    strict = build_tree_cluster(names, counts, toy_vectors, threshold=0.8)
    # cos(40) = 0.766 < 0.8: holding no longer joins across; the has group still forms.
    assert multi_groups(strict) == [["has", "wearing", "wears"]]
    assert strict.layers[0] == ids(names, "has")
    three = build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD, num_layers=3)
    # Ranks in the has group: has 277936 -> 1, wearing 136099 -> 2, wears 15457 -> 3;
    # across is rank 2 in its group; single groups go to the last layer (3).
    assert three.layers[0] == ids(names, "has", "holding")
    assert three.layers[1] == ids(names, "across", "wearing")
    assert len(three.layers[2]) == 46 and names.index("wears") in three.layers[2]


def test_a_layer_left_empty_is_an_error(vg150, toy_vectors):
    names, counts = vg150
    # The largest group has 3 members, so with 5 layers layer 4 gets no predicate (layer 5
    # gets the single groups).
    with pytest.raises(TreeError, match="layer 4 of 5 would be empty"):
        build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD, num_layers=5)


def test_frequency_source_puts_the_top_k_first(vg150):
    names, counts = vg150
    tree = build_tree("frequency:10", names, counts)
    # On VG150 the 10 most frequent predicates are exactly the authors' coarse set.
    assert {names[p] for p in tree.layers[0]} == OFFICIAL_COARSE
    assert len(tree.layers[1]) == 40
    top3 = build_tree_frequency(names, counts, 3)
    assert top3.layers[0] == ids(names, "on", "has", "in")
    with pytest.raises(TreeError, match="1 <= K < 50"):
        build_tree_frequency(names, counts, 50)


def test_official_list_tree_loads(vg150):
    names, counts = vg150
    tree = PredicateTree.from_json(str(OFFICIAL_TREE), names)
    assert [len(layer) for layer in tree.layers] == [10, 40]
    assert {names[p] for p in tree.layers[0]} == OFFICIAL_COARSE
    assert tree.source == "list" and tree.metadata["note"]
    assert tree.counts == counts
    assert tree.stage_predicates(1) == tree.layers[0] and tree.old_predicates(2) == tree.layers[0]
    constants = json.loads(require_shared("data", "reference", "hml_official_constants.json").read_text())
    assert set(constants["stage0_predicates"]) == OFFICIAL_COARSE
    assert tree.layers == build_tree("frequency:10", names, counts).layers


def test_list_source_inline_and_files(vg150, tmp_path):
    names, _ = vg150
    inline = build_tree("list:on, has ;*", names)
    assert inline.layers[0] == ids(names, "on", "has") and len(inline.layers[1]) == 48
    text = tmp_path / "layers.txt"
    text.write_text("# coarse first\non,has\nnear\n*\n")
    assert parse_layer_lists(str(text)) == [["on", "has"], ["near"], ["*"]]
    assert [len(layer) for layer in build_tree(f"list:{text}", names).layers] == [2, 1, 47]
    as_json = tmp_path / "layers.json"
    as_json.write_text(json.dumps({"layers": [{"names": ["on"]}, ["*"]]}))
    assert build_tree(f"list:{as_json}", names).layers[0] == ids(names, "on")
    with pytest.raises(TreeError, match="'sleeping on', which is not in the dictionary"):
        build_tree_from_lists(names, [["on", "sleeping on"], ["*"]])
    with pytest.raises(TreeError, match=r"predicate \d+ \('above'\) is in no layer"):
        build_tree_from_lists(names, [["on"], ["has"]])
    with pytest.raises(TreeError, match="'\\*' must be alone"):
        build_tree_from_lists(names, [["*"], ["*"]])
    with pytest.raises(TreeError, match="does not exist"):
        build_tree(f"list:{tmp_path / 'missing.json'}", names)
    with pytest.raises(TreeError, match="unknown tree source"):
        build_tree("kmeans", names)


def test_json_round_trip(vg150, toy_vectors, tmp_path):
    names, counts = vg150
    tree = build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD, embedding="toy (64d)")
    tree.metadata = {"note": "test"}
    path = tmp_path / "tree.json"
    tree.to_json(str(path))
    back = PredicateTree.from_json(str(path), names)
    for field in ("names", "layers", "groups", "counts", "threshold", "order", "embedding", "source", "metadata"):
        assert getattr(back, field) == getattr(tree, field), field
    assert back.similarity == pytest.approx(tree.similarity, abs=1e-6)
    assert back.nearest_other == pytest.approx(tree.nearest_other, abs=1e-6)
    assert back.report() == tree.report()
    # Hand-written trees may give names only and leave out the predicate list.
    hand = tmp_path / "hand.json"
    hand.write_text(json.dumps({"layers": [["on", "has"], {"names": [n for n in names[1:] if n not in ("on", "has")]}]}))
    assert PredicateTree.from_json(str(hand), names).layers[0] == ids(names, "on", "has")


def _edited(tmp_path, edit):
    data = json.loads(OFFICIAL_TREE.read_text())
    edit(data)
    path = tmp_path / "bad_tree.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_tree_file_errors_name_file_and_predicate(vg150, tmp_path):
    names, _ = vg150
    def drop_wears(data):
        layer = data["layers"][1]
        i = layer["names"].index("wears")
        del layer["names"][i], layer["ids"][i]
    path = _edited(tmp_path, drop_wears)
    with pytest.raises(TreeError, match=rf"{path}: predicate 49 \('wears'\) is in no layer"):
        PredicateTree.from_json(path, names)

    def duplicate_on(data):
        data["layers"][1]["names"].append("on")
        data["layers"][1]["ids"].append(names.index("on"))
    with pytest.raises(TreeError, match=r"predicate 31 \('on'\) is in layer 1 and layer 2"):
        PredicateTree.from_json(_edited(tmp_path, duplicate_on), names)

    def rename(data):
        data["predicates"][5] = "und"
    with pytest.raises(TreeError, match="predicate 5 is 'und' in the tree but 'and' in the dataset dictionary"):
        PredicateTree.from_json(_edited(tmp_path, rename), names)

    def mismatched_id(data):
        data["layers"][0]["ids"][0] = 2
    with pytest.raises(TreeError, match="pairs id 2 with name 'above', but id 2 is 'across'"):
        PredicateTree.from_json(_edited(tmp_path, mismatched_id), names)

    other_dataset = ["__background__", "on", "has"]
    with pytest.raises(TreeError, match="in the dataset dictionary"):
        PredicateTree.from_json(str(OFFICIAL_TREE), other_dataset)
    with pytest.raises(TreeError, match="does not exist"):
        PredicateTree.from_json(str(tmp_path / "none.json"), names)


def test_missing_words(vg150, toy_vectors):
    names, counts = vg150
    vectors = dict(toy_vectors)
    del vectors["front"]
    with pytest.raises(MissingWordError, match="'front' \\(in predicate 'in front of'\\)"):
        build_tree_cluster(names, counts, vectors)
    tree = build_tree_cluster(names, counts, vectors, threshold=THRESHOLD, allow_missing_words=True)
    # "in front of" is then the mean of "in" and "of": cosine 0.707 with each, still alone.
    assert multi_groups(tree) == [["across", "holding"], ["has", "wearing", "wears"]]
    assert np.allclose(phrase_vector("in front of", vectors, allow_missing=True),
                       (vectors["in"] + vectors["of"]) / 2)
    with pytest.raises(MissingWordError, match="no word of predicate 'front'"):
        phrase_vector("front", vectors, allow_missing=True)


def test_tool_writes_the_tree_it_reports(vg150, toy_vectors, tmp_path, capsys, monkeypatch):
    """The CLI on the dictionary, with the toy vectors as a GloVe text file."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tools"))
    import build_predicate_tree

    names, counts = vg150
    glove = tmp_path / "toy.txt"
    glove.write_text("".join(f"{w} {' '.join(repr(float(x)) for x in v)}\n" for w, v in toy_vectors.items()))
    out = tmp_path / "tree.json"
    dict_file = str(require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json"))
    assert build_predicate_tree.main(["--dict-file", dict_file, "--source", "cluster", "--vectors", str(glove),
                                      "--threshold", str(THRESHOLD), "--out", str(out), "--note", "toy"]) == 0
    printed = capsys.readouterr().out
    tree = PredicateTree.from_json(str(out), names)
    assert tree.report() == printed.strip().splitlines()
    assert tree.layers == build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD).layers
    assert tree.metadata["note"] == "toy" and "--note" not in tree.metadata["command"]
    assert "Layer sizes: 2 / 48" in printed
    assert "group" in printed and "holding [42722, L1, sim 0.940]" in printed
    assert build_predicate_tree.main(["--dict-file", dict_file, "--source", "cluster"]) == 2
    del sys.modules["build_predicate_tree"]


# ----------------------------------------------------------------- parent links
VG150_HIERARCHY_TREE = REPO_ROOT / "configs" / "hierarchy" / "vg150_cogtree_tree.json"


def test_groups_give_each_group_its_layer1_member_as_parent(vg150, toy_vectors):
    names, counts = vg150
    tree = with_parents(build_tree_cluster(names, counts, toy_vectors, threshold=THRESHOLD), "groups")
    layer_of = tree.layer_of()
    links = tree.hierarchy.links()
    for group in tree.groups:
        if len(group) == 1:
            assert tree.names[group[0]] not in links
            continue
        head = [p for p in group if layer_of[p] == 1]
        assert len(head) == 1
        assert {tree.names[p]: links[tree.names[p]] for p in group if p != head[0]} == {
            tree.names[p]: tree.names[head[0]] for p in group if p != head[0]}
    assert set(links) == {tree.names[p] for g in tree.groups if len(g) > 1 for p in g if layer_of[p] == 2}


def test_parent_sources_list_and_info(vg150, tmp_path):
    names, counts = vg150
    tree = with_parents(build_tree("list:on,has;*", names, counts), "list:sitting on=on, wearing=has")
    assert tree.hierarchy.links() == {"sitting on": "on", "wearing": "has"}
    info = tmp_path / "synthetic_vg_info.json"
    info.write_text(json.dumps({"hierarchy": {"coarse_to_fine": {"on": ["sitting on", "standing on"], "near": []}}}))
    tree = with_parents(build_tree("list:on,near;*", names, counts), f"info:{info}")
    assert tree.hierarchy.links() == {"sitting on": "on", "standing on": "on"}
    with pytest.raises(TreeError, match="parent 20 \\('has'\\) is in layer 2, not before its child 48"):
        with_parents(build_tree("list:on;*", names, counts), "list:wearing=has")
    with pytest.raises(TreeError, match="unknown parent source"):
        with_parents(build_tree("list:on;*", names, counts), "cluster")
    with pytest.raises(TreeError, match="needs a clustered tree"):
        with_parents(build_tree("list:on;*", names, counts), "groups")


def test_parents_round_trip_through_json(vg150, tmp_path):
    names, counts = vg150
    tree = with_parents(build_tree("list:on,has;*", names, counts), "list:sitting on=on, wearing=has")
    path = tmp_path / "tree.json"
    tree.to_json(str(path))
    loaded = PredicateTree.from_json(str(path), names)
    assert loaded.hierarchy == tree.hierarchy
    assert json.loads(path.read_text())["parents"] == {"sitting on": "on", "wearing": "has"}
    assert "Parents (2 fine predicates):" in tree.report()


def test_shipped_vg150_tree_has_cogtree_parents(vg150, tmp_path, monkeypatch):
    """The file says where each link comes from, and its recorded command rebuilds it."""
    names, _ = vg150
    tree = PredicateTree.from_json(str(VG150_HIERARCHY_TREE), names)
    hierarchy = tree.hierarchy
    assert {names[p] for p in hierarchy.coarse_ids()} == {"on", "near", "has", "wearing", "wears", "holding"}
    assert len(hierarchy.fine_ids()) == 44 and set(hierarchy.sources) == set(hierarchy.links())
    assert len(hierarchy.children(names.index("on"))) == 27
    assert hierarchy.children(names.index("wearing")) == []
    assert [names[p] for p in hierarchy.children(names.index("holding"))] == ["carrying", "using", "watching"]
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tools"))
    monkeypatch.chdir(REPO_ROOT)
    import build_predicate_tree

    args = shlex.split(json.loads(VG150_HIERARCHY_TREE.read_text())["metadata"]["command"])[2:]
    args[args.index("--dict-file") + 1] = str(require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json"))
    args[args.index("--out") + 1] = str(tmp_path / "rebuilt.json")
    assert build_predicate_tree.main(args) == 0
    rebuilt = json.loads((tmp_path / "rebuilt.json").read_text())
    shipped = json.loads(VG150_HIERARCHY_TREE.read_text())
    assert {k: v for k, v in rebuilt.items() if k != "metadata"} == {k: v for k, v in shipped.items() if k != "metadata"}
    del sys.modules["build_predicate_tree"]
