"""Evaluate a trained relation model (the benchmark's command line).

Loads OUTPUT_DIR/last_checkpoint if present, else MODEL.WEIGHT, and writes
OUTPUT_DIR/inference/<dataset>/ for the split named by DATASETS.TO_TEST (default test).
The training frameworks of MODEL.ROI_RELATION_HEAD.FRAMEWORKS are prepared first, so
their modules load and their test-time scores apply.

    python tools/relation_test_net.py --config-file CONFIG [KEY VALUE ...]
"""
import hml_patch  # noqa: F401  (HML config keys and framework, for models trained with HML)
import training_frameworks  # noqa: F401  (the other training frameworks)
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.framework import prepare_for_testing
from maskrcnn_benchmark.engine.relation_train import build_relation_model, evaluate_relation_model
from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer


def main() -> None:
    args = default_argument_parser("Scene-graph relation testing").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    model = build_relation_model(ctx.cfg, ctx)
    prepare_for_testing(ctx.cfg, model)
    DetectronCheckpointer(ctx.cfg, model, save_dir=ctx.cfg.OUTPUT_DIR, logger=ctx.logger).load(ctx.cfg.MODEL.WEIGHT)
    evaluate_relation_model(ctx.cfg, model, ctx)


if __name__ == "__main__":
    main()
