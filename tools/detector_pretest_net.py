"""Evaluate a pretrained detector by COCO box mAP (the benchmark's command line).

Loads OUTPUT_DIR/last_checkpoint if present, else MODEL.WEIGHT.

    python tools/detector_pretest_net.py --config-file CONFIG [KEY VALUE ...]
"""
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.detector_train import evaluate_detector
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer


def main() -> None:
    args = default_argument_parser("Detector testing").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    model = build_detection_model(ctx.cfg).to(ctx.device)
    DetectronCheckpointer(ctx.cfg, model, save_dir=ctx.cfg.OUTPUT_DIR, logger=ctx.logger).load(ctx.cfg.MODEL.WEIGHT)
    evaluate_detector(ctx.cfg, model, ctx)


if __name__ == "__main__":
    main()
