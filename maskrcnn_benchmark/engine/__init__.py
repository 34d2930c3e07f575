"""Training and inference loops and the tools' shared start-up."""
from .defaults import RunContext, default_argument_parser, load_config, setup
from .inference_loop import InferenceStats, run_inference
from .trainer import NonFiniteLossError, StepOutcome, TrainHook, TrainSummary, amp_settings, do_train, reduce_loss_dict

__all__ = ["RunContext", "default_argument_parser", "load_config", "setup", "InferenceStats", "run_inference",
           "NonFiniteLossError", "StepOutcome", "TrainHook", "TrainSummary", "amp_settings", "do_train",
           "reduce_loss_dict"]
