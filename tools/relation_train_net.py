"""Train a scene-graph relation head on a frozen detector (the benchmark's command line).

    python tools/relation_train_net.py --config-file CONFIG [--skip-test] [KEY VALUE ...]
    torchrun --nproc_per_node=N tools/relation_train_net.py --config-file CONFIG ...

With MODEL.ROI_RELATION_HEAD.HML True the relation head is trained by HML's stages
(hml_patch; settings in HML.*) and the last stage's model is evaluated.
"""
import hml_patch  # noqa: F401  (registers the HML config group and predictor)
from hml_patch.stages import train_hml
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.relation_train import evaluate_relation_model, train_relation_model


def main() -> None:
    args = default_argument_parser("Scene-graph relation training").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    if ctx.cfg.MODEL.ROI_RELATION_HEAD.HML:
        model = train_hml(ctx.cfg, ctx).model
    else:
        model = train_relation_model(ctx.cfg, ctx)
    if not args.skip_test:
        evaluate_relation_model(ctx.cfg, model, ctx)


if __name__ == "__main__":
    main()
