"""Self-contained scene-graph model files: a checkpoint that runs without its dataset.

A checkpoint written by relation training (or by ``tools/export_model.py``) keeps its
usual keys (``model``, ``optimizer``, ``iteration`` ...) and adds one more,
``scene_graph_model``, holding what building and reading the model needs besides the
weights:

- ``config``: the config it was trained with, as YAML text;
- ``obj_classes``, ``rel_classes``, ``att_classes``: the vocabulary (background first);
- ``fg_matrix``, ``pred_dist``: the training set's frequency statistics (tensors), which the
  frequency bias is built from;
- ``word_vectors``: the rows of GLOVE_DIR for the class names (``words`` and a ``vectors``
  tensor), so the predictors' label embeddings can be built without the word-vector file
  (the weights then overwrite them);
- ``predicate_tree``: the predicate tree file used in training (``key``: the config key that
  named it, ``text``: its content), or ``{}``.

Everything is strings, lists and tensors, so ``torch.load(weights_only=True)`` reads it.
A plain benchmark checkpoint has no such entry and loads as before.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import yaml
from yacs.config import CfgNode as _YacsCfgNode

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.build import get_dataset_statistics
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.roi_heads.relation_head.word_vectors import load_word_vectors, longest_word
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file
from maskrcnn_benchmark.utils.model_serialization import load_state_dict

logger = logging.getLogger(__name__)

MODEL_FILE_KEY = "scene_graph_model"
MODEL_FILE_FORMAT = "sgg-scene-graph-model"
MODEL_FILE_VERSION = 1
# Config keys that may name a predicate tree file used in training (the evaluator's, HML's).
PREDICATE_TREE_KEYS = ("TEST.RELATION.PREDICATE_TREE", "HML.TREE")
STATISTICS_KEYS = ("fg_matrix", "pred_dist", "obj_classes", "rel_classes", "att_classes")


class ModelFileError(ValueError):
    """A checkpoint is not a usable self-contained scene-graph model file."""


def _config_value(cfg, dotted: str) -> Optional[Any]:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, _YacsCfgNode) or part not in node:
            return None
        node = node[part]
    return node


def predicate_tree_entry(cfg) -> Dict[str, str]:
    """``{"key", "text"}`` of the first of PREDICATE_TREE_KEYS that names an existing file, else ``{}``."""
    for key in PREDICATE_TREE_KEYS:
        value = _config_value(cfg, key)
        if isinstance(value, str) and value and os.path.isfile(value):
            with open(value, encoding="utf-8") as f:
                return {"key": key, "text": f.read()}
    return {}


def class_word_vectors(glove_dir: str, dim: int, obj_classes: Sequence[str]) -> Dict[str, Any]:
    """The word vectors the predictors look up for ``obj_classes``; empty when GLOVE_DIR has none
    (a predictor without label embeddings, such as IMP, trains without them)."""
    names = ["start"] + list(obj_classes)
    tokens = set(names) | {longest_word(n) for n in names}
    try:
        vectors = load_word_vectors(glove_dir, dim, tokens)
    except FileNotFoundError as err:
        logger.info("The model file carries no word vectors: %s", err)
        vectors = {}
    words = sorted(vectors)
    table = torch.stack([vectors[w] for w in words]) if words else torch.zeros(0, dim)
    return {"words": words, "vectors": table}


def model_file_entry(cfg, statistics: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The ``scene_graph_model`` checkpoint entry of a model trained with ``cfg``.

    ``statistics`` default to ``get_dataset_statistics(cfg)`` (so the dataset, or its cache).
    """
    statistics = statistics if statistics is not None else get_dataset_statistics(cfg)
    return {
        "format": MODEL_FILE_FORMAT,
        "version": MODEL_FILE_VERSION,
        "config": cfg.dump(),
        "obj_classes": list(statistics["obj_classes"]),
        "rel_classes": list(statistics["rel_classes"]),
        "att_classes": list(statistics["att_classes"]),
        "fg_matrix": torch.as_tensor(statistics["fg_matrix"]).clone(),
        "pred_dist": torch.as_tensor(statistics["pred_dist"]).float().clone(),
        "word_vectors": class_word_vectors(cfg.GLOVE_DIR, cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM,
                                           statistics["obj_classes"]),
        "predicate_tree": predicate_tree_entry(cfg),
    }


def check_model_file_entry(entry: Any, path: str) -> Mapping[str, Any]:
    """``entry`` itself when it is a model-file entry this code reads, else a ModelFileError."""
    if not isinstance(entry, Mapping):
        raise ModelFileError(f"{path} has no '{MODEL_FILE_KEY}' entry: it is a plain checkpoint; make a "
                             f"self-contained model file with tools/export_model.py")
    if entry.get("format") != MODEL_FILE_FORMAT or entry.get("version") != MODEL_FILE_VERSION:
        raise ModelFileError(f"{path}: '{MODEL_FILE_KEY}' is format {entry.get('format')!r} version "
                             f"{entry.get('version')!r}, expected {MODEL_FILE_FORMAT!r} {MODEL_FILE_VERSION}")
    missing = [k for k in ("config", "word_vectors", "predicate_tree", *STATISTICS_KEYS) if k not in entry]
    if missing:
        raise ModelFileError(f"{path}: '{MODEL_FILE_KEY}' lacks {missing}")
    return entry


def config_from_entry(entry: Mapping[str, Any], opts: Sequence[str] = ()):
    """The frozen training config of ``entry`` with ``KEY VALUE`` overrides ``opts`` applied.

    Config groups added by plug-ins (e.g. ``HML``) must be registered before (import the plug-in).
    """
    cfg = default_cfg.clone()
    try:
        cfg.merge_from_other_cfg(_YacsCfgNode(yaml.safe_load(entry["config"]) or {}))
    except KeyError as err:
        raise ModelFileError(f"the model's config has a key this program does not know ({err}); import the "
                             f"package that defines it (tools/predict_scene_graphs.py imports hml_patch and training_frameworks)") from err
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    return cfg


def statistics_from_entry(entry: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``get_dataset_statistics`` dict stored in ``entry``."""
    return {key: entry[key] for key in STATISTICS_KEYS}


def _write_word_vector_cache(word_vectors: Mapping[str, Any], path: str) -> None:
    """``word_vectors`` in the benchmark's ``.pt`` cache layout ``(word -> row, [V, d], d)``."""
    table = word_vectors["vectors"]
    torch.save(({w: i for i, w in enumerate(word_vectors["words"])}, table, int(table.shape[1])), path)


@dataclass
class SceneGraphModel:
    """A built model file: its config (overrides applied), the model in eval mode, the vocabulary."""

    cfg: Any
    model: torch.nn.Module
    obj_classes: List[str]
    rel_classes: List[str]
    predicate_tree: Dict[str, str]


def build_model_from_entry(entry: Mapping[str, Any], cfg) -> torch.nn.Module:
    """The detection model of ``cfg`` built from ``entry``'s statistics and word vectors (no dataset
    files), with the training frameworks of the config prepared on it as for testing."""
    # Imported here: the framework module imports relation training, which imports this module.
    from maskrcnn_benchmark.engine.framework import attach_frameworks, build_frameworks

    statistics = statistics_from_entry(entry)
    with tempfile.TemporaryDirectory(prefix="sgg_model_") as tmp:
        vectors_file = os.path.join(tmp, "class_word_vectors.pt")
        _write_word_vector_cache(entry["word_vectors"], vectors_file)
        build_cfg = cfg.clone()
        build_cfg.defrost()
        build_cfg.GLOVE_DIR = vectors_file
        build_cfg.freeze()
        model = build_detection_model(build_cfg, statistics)
    attach_frameworks(model, build_frameworks(cfg, statistics))
    return model


@dataclass
class ModelFile:
    """A self-contained model file as read from disk (weights_only): weights and entry."""

    path: str
    weights: Mapping[str, torch.Tensor]
    entry: Mapping[str, Any]

    @classmethod
    def read(cls, path: str) -> "ModelFile":
        checkpoint = load_checkpoint_file(path)
        return cls(path, checkpoint["model"], check_model_file_entry(checkpoint.get(MODEL_FILE_KEY), path))

    def config(self, opts: Sequence[str] = ()):
        """The training config with the ``KEY VALUE`` overrides ``opts`` (e.g. the mode, MODEL.DEVICE)."""
        return config_from_entry(self.entry, opts)

    def build(self, cfg, device: Optional[torch.device] = None) -> SceneGraphModel:
        """The model of ``cfg`` with this file's weights, in eval mode on ``device``.

        Every model key must be in the file: weights for another architecture are an error,
        not silently random layers.
        """
        model = build_model_from_entry(self.entry, cfg)
        report = load_state_dict(model, self.weights)
        if report.missing or report.shape_mismatch:
            raise ModelFileError(f"{self.path} does not fit the model of its config: {report.summary()}")
        model.eval()
        if device is not None:
            model.to(device)
        return SceneGraphModel(cfg, model, list(self.entry["obj_classes"]), list(self.entry["rel_classes"]),
                               dict(self.entry["predicate_tree"]))
