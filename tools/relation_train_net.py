"""Train a scene-graph relation head on a frozen detector (the benchmark's command line).

    python tools/relation_train_net.py --config-file CONFIG [--skip-test] [KEY VALUE ...]
    torchrun --nproc_per_node=N tools/relation_train_net.py --config-file CONFIG ...

MODEL.ROI_RELATION_HEAD.FRAMEWORKS names the training frameworks to train with, stacked
(MODEL.ROI_RELATION_HEAD.HML True adds HML, whose settings are HML.*); with a
multi-stage framework the last stage's model is evaluated.
"""
import hml_patch  # noqa: F401  (registers the HML config group and framework)
import training_frameworks  # noqa: F401  (registers the other training frameworks)
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.framework import train_with_frameworks
from maskrcnn_benchmark.engine.relation_train import evaluate_relation_model


def main() -> None:
    args = default_argument_parser("Scene-graph relation training").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    model = train_with_frameworks(ctx.cfg, ctx)
    if not args.skip_test:
        evaluate_relation_model(ctx.cfg, model, ctx)


if __name__ == "__main__":
    main()
