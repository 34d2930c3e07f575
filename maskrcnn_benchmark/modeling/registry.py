"""Name -> builder registries through which config strings select modules, as in the benchmark."""
from typing import Any, Callable, Optional


class Registry(dict):
    """A dict of named builders with a ``register`` decorator and a helpful missing-key error."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str, obj: Optional[Any] = None) -> Any:
        """``registry.register(name, obj)``, or ``@registry.register(name)`` on a class/function."""
        if obj is not None:
            self._add(name, obj)
            return obj

        def decorator(fn: Callable) -> Callable:
            self._add(name, fn)
            return fn
        return decorator

    def _add(self, name: str, obj: Any) -> None:
        if name in self:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self[name] = obj

    def __missing__(self, name: str) -> Any:
        raise KeyError(f"Unknown {self.kind} {name!r}; registered: {sorted(self.keys())}")


BACKBONES = Registry("backbone (MODEL.BACKBONE.CONV_BODY)")
RPN_HEADS = Registry("RPN head (MODEL.RPN.RPN_HEAD)")
ROI_BOX_FEATURE_EXTRACTORS = Registry("box feature extractor (MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR)")
ROI_BOX_PREDICTOR = Registry("box predictor (MODEL.ROI_BOX_HEAD.PREDICTOR)")
ROI_RELATION_FEATURE_EXTRACTORS = Registry(
    "relation feature extractor (MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR)")
ROI_RELATION_PREDICTOR = Registry("relation predictor (MODEL.ROI_RELATION_HEAD.PREDICTOR)")
