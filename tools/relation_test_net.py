"""Evaluate a trained relation model (the benchmark's command line).

Loads OUTPUT_DIR/last_checkpoint if present, else MODEL.WEIGHT, and writes
OUTPUT_DIR/inference/<dataset>/ for the split named by DATASETS.TO_TEST (default test).

    python tools/relation_test_net.py --config-file CONFIG [KEY VALUE ...]
"""
import hml_patch  # noqa: F401  (HML config keys and predictor, for models trained with HML)
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.relation_train import build_relation_model, evaluate_relation_model
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer


def main() -> None:
    args = default_argument_parser("Scene-graph relation testing").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    model = build_relation_model(ctx.cfg, ctx)
    DetectronCheckpointer(ctx.cfg, model, save_dir=ctx.cfg.OUTPUT_DIR, logger=ctx.logger).load(ctx.cfg.MODEL.WEIGHT)
    evaluate_relation_model(ctx.cfg, model, ctx)


if __name__ == "__main__":
    main()
