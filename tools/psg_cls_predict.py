"""Write the CE7454 submission: the top 3 predicates of every test image as the grader's result.txt.

    python tools/psg_cls_predict.py --config-file CONFIG [--checkpoint FILE] [--stage test] [KEY VALUE ...]

Reads OUTPUT_DIR/model_best.pth unless --checkpoint names another file, applies the
rare-class multiplier (PSG_CLS.RARE_MULTIPLIER, lists from PSG_CLS.CLASS_LISTS and the
training split) and writes OUTPUT_DIR/<stage>/res/result.txt, one line per image in the
order of the data file. With --gt FILE (grader GT lines) it also scores the result.
"""
import argparse
import os

import torch

from maskrcnn_benchmark.data.datasets.psg_vocabulary import PREDICATES
from maskrcnn_benchmark.engine.defaults import load_config
from maskrcnn_benchmark.psg_cls.class_lists import class_vector
from maskrcnn_benchmark.psg_cls.data import STAGES, PSGClsDataset
from maskrcnn_benchmark.psg_cls.engine import ClsSettings, predict_probabilities, top_k, training_lists
from maskrcnn_benchmark.psg_cls.grader import RESULT_FILE, score_files, write_id_lines
from maskrcnn_benchmark.psg_cls.model import build_classifier


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--checkpoint", default="", metavar="FILE", help="default OUTPUT_DIR/model_best.pth")
    parser.add_argument("--stage", default="test", choices=STAGES)
    parser.add_argument("--gt", default="", metavar="FILE", help="grader GT file to score the result against")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config_file, args.opts)
    settings = ClsSettings.from_config(cfg)
    model = build_classifier(settings.arch, len(PREDICATES))
    checkpoint = args.checkpoint or os.path.join(cfg.OUTPUT_DIR, "model_best.pth")
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    dataset = PSGClsDataset(settings.data_file, settings.img_dir, args.stage, settings.input_size, train=False)
    probabilities = predict_probabilities(model, dataset, settings.batch_size, torch.device("cpu"),
                                          settings.num_workers)
    multiplier = class_vector(training_lists(settings).multiplied, settings.rare_multiplier)
    result_file = os.path.join(cfg.OUTPUT_DIR, args.stage, RESULT_FILE)
    write_id_lines(result_file, top_k(probabilities, multiplier).tolist())
    print(f"wrote {len(dataset)} lines to {result_file}")
    if args.gt:
        result = score_files(result_file, args.gt)
        print(f"mR@3 {result.score:.4f}" + (f" (classes absent from the GT, counted 0: {result.absent})"
                                            if result.absent else ""))


if __name__ == "__main__":
    main()
