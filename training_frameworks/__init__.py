"""Training frameworks for the relation head other than HML (which lives in ``hml_patch``).

One folder per framework; importing this package registers each of them in the
benchmark's ``TRAINING_FRAMEWORKS`` registry and adds its config group to the
project's default config. Select them with ``MODEL.ROI_RELATION_HEAD.FRAMEWORKS``.

- ``reweighting``: class-balanced CE (Cui et al., effective number) and inverse-frequency CE.
- ``lskd``: LS-KD soft targets from a snapshot teacher or an auxiliary head (LSKD.md).
- ``hierarchical_loss``: the two-layer predicate loss and refine-or-coarse inference (HIERARCHY.md D2-D3).
- ``ebm``: energy-based learning, an energy model and SGLD-refined negatives (EBM.md).
"""
from . import ebm  # noqa: F401
from . import hierarchical_loss  # noqa: F401
from . import lskd  # noqa: F401
from . import reweighting  # noqa: F401
