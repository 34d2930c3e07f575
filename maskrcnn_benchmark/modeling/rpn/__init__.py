"""Region proposal network."""
from .rpn import RPNModule, build_rpn

__all__ = ["RPNModule", "build_rpn"]
