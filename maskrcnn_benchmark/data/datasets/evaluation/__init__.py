"""Dataset evaluators: the scene-graph evaluator of VG-format datasets."""
from .vg import SGGEvaluator, build_sgg_evaluator

__all__ = ["SGGEvaluator", "build_sgg_evaluator"]
