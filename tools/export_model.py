"""Make a self-contained scene-graph model file from an existing checkpoint and its dataset.

    python tools/export_model.py --config-file CONFIG --checkpoint CKPT.pth --out MODEL.pth [KEY VALUE ...]

CONFIG (with the overrides) is the config the checkpoint was trained with; its training
dataset (DATASETS.TRAIN under DATASETS.DATA_DIR, or the statistics cache in OUTPUT_DIR)
gives the vocabulary and the frequency statistics, GLOVE_DIR the class word vectors. The
output holds the checkpoint's weights and the ``scene_graph_model`` entry (see
maskrcnn_benchmark/scene_graphs/model_file.py), not its optimizer state, and runs with
tools/predict_scene_graphs.py without any dataset file. Checkpoints written by relation
training already carry the entry and need no export.
"""
from __future__ import annotations

import argparse
import logging

import torch

import hml_patch  # noqa: F401  (HML config keys, for models trained with HML)
import training_frameworks  # noqa: F401  (the other training frameworks' config keys)
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.scene_graphs.model_file import MODEL_FILE_KEY, ModelFile, model_file_entry
from maskrcnn_benchmark.utils.atomic_io import atomic_path
from maskrcnn_benchmark.utils.checkpoint import load_checkpoint_file

logger = logging.getLogger("export_model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, help="the config the checkpoint was trained with")
    parser.add_argument("--checkpoint", required=True, help="checkpoint with a 'model' state_dict (.pth)")
    parser.add_argument("--out", required=True, help="the self-contained model file to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    cfg = load_config(args.config_file, args.opts)
    weights = load_checkpoint_file(args.checkpoint)["model"]
    with atomic_path(args.out) as tmp:
        torch.save({"model": weights, MODEL_FILE_KEY: model_file_entry(cfg)}, tmp)
        exported = ModelFile.read(tmp)
        exported.build(exported.config())  # the file is kept only if its model builds and loads
    logger.info("Wrote %s", args.out)


if __name__ == "__main__":
    main()
