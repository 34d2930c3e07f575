"""Scene graphs for any folder of images, from a self-contained model file (no dataset needed).

    python tools/predict_scene_graphs.py --model MODEL.pth --images DIR_OR_GLOB --out OUT \
        [--mode sgdet|sgcls|predcls --boxes boxes.json] [KEY VALUE ...]
    torchrun --nproc_per_node=N tools/predict_scene_graphs.py ...   (each process a share)

MODEL.pth is a checkpoint written by relation training, or one made by tools/export_model.py.
Writes OUT/graphs/<image>.json and .png, OUT/index.html (open it in a browser) and
OUT/summary.json. Images that cannot be read are skipped, logged and listed in the summary;
a rerun only does the images whose files are missing. SGCls and PredCls take the boxes from
--boxes (schema in maskrcnn_benchmark/scene_graphs/images.py). KEY VALUE pairs override the
model's config, e.g. MODEL.DEVICE cuda or TEST.RELATION.LATER_NMS_PREDICTION_THRES 0.5.
"""
from __future__ import annotations

import argparse
import os

import hml_patch  # noqa: F401  (HML config keys and framework, for models trained with HML)
import training_frameworks  # noqa: F401  (the other training frameworks' config keys)
from maskrcnn_benchmark.scene_graphs.images import list_images, load_boxes_file
from maskrcnn_benchmark.scene_graphs.model_file import ModelFile
from maskrcnn_benchmark.scene_graphs.predict import (PredictSettings, gather_reports, mode_overrides,
                                                     predict_shard, write_index, write_summary)
from maskrcnn_benchmark.utils.comm import get_rank, is_main_process, synchronize
from maskrcnn_benchmark.utils.distributed import init_distributed
from maskrcnn_benchmark.utils.logger import setup_logger


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="self-contained model file (.pth)")
    parser.add_argument("--images", required=True, help="folder (searched recursively), image file or glob")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--mode", default="sgdet", choices=("sgdet", "sgcls", "predcls"),
                        help="sgdet detects the objects; sgcls / predcls take them from --boxes")
    parser.add_argument("--boxes", default=None, help="boxes.json for sgcls / predcls")
    parser.add_argument("--batch-size", type=int, default=2, help="images per forward pass and process")
    parser.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes")
    parser.add_argument("--top-k", type=int, default=None,
                        help="relations kept per image in the JSON (default TEST.SAVE_PREDICTIONS_TOP_REL)")
    parser.add_argument("--draw-top", type=int, default=10, help="relations drawn per image")
    parser.add_argument("--table-top", type=int, default=20, help="relations per image in index.html")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args()
    if (args.mode == "sgdet") != (args.boxes is None):
        parser.error("--boxes goes with --mode sgcls or predcls, and they need it")
    return args


def main() -> None:
    args = parse_args()
    model_file = ModelFile.read(args.model)
    cfg = model_file.config(mode_overrides(args.mode) + list(args.opts))
    _, _, device = init_distributed(None, cfg.MODEL.DEVICE)
    logger = setup_logger("maskrcnn_benchmark", args.out, get_rank(), filename="predict_log.txt")
    sg = model_file.build(cfg, device)
    entries = list_images(args.images)
    boxes = load_boxes_file(args.boxes, sg.obj_classes) if args.boxes else None
    settings = PredictSettings(mode=args.mode, batch_size=args.batch_size, num_workers=args.num_workers,
                               json_relations=args.top_k or cfg.TEST.SAVE_PREDICTIONS_TOP_REL,
                               drawn_relations=args.draw_top, table_relations=args.table_top)
    logger.info("%d images in %s, %s with %s on %s", len(entries), args.images, args.mode, args.model, device)
    reports = gather_reports(predict_shard(sg, entries, args.out, boxes, settings, device, logger))
    synchronize()
    if is_main_process():
        indexed = write_index(entries, args.out, settings, f"Scene graphs of {args.images}")
        summary = write_summary(reports, entries, indexed, args.out, args.model, settings)
        logger.info("Wrote %d, %d already done, %d failed (%s images/s); open %s", summary["written"],
                    summary["already_done"], len(summary["failed"]), summary["images_per_second"],
                    os.path.join(args.out, "index.html"))


if __name__ == "__main__":
    main()
