"""Dataset evaluators: the scene-graph evaluator of VG-format datasets, and its PSG matching form."""
from .psg_evaluator import PSGEvaluator, build_relation_evaluator
from .vg import SGGEvaluator, build_sgg_evaluator

__all__ = ["PSGEvaluator", "SGGEvaluator", "build_relation_evaluator", "build_sgg_evaluator"]
