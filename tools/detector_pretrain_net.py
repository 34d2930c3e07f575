"""Pretrain the Faster R-CNN detector that relation models run on (the benchmark's command line).

    python tools/detector_pretrain_net.py --config-file CONFIG [--skip-test] [KEY VALUE ...]
    torchrun --nproc_per_node=N tools/detector_pretrain_net.py --config-file CONFIG ...
"""
from maskrcnn_benchmark.engine.defaults import default_argument_parser, setup
from maskrcnn_benchmark.engine.detector_train import evaluate_detector, train_detector


def main() -> None:
    args = default_argument_parser("Detector pretraining").parse_args()
    ctx = setup(args.config_file, args.opts, args.local_rank)
    model = train_detector(ctx.cfg, ctx)
    if not args.skip_test:
        evaluate_detector(ctx.cfg, model, ctx)


if __name__ == "__main__":
    main()
