"""PredCls / SGCls / SGDet: the one place that reads the two mode switches (REFERENCE 2.1)."""
from typing import Optional

RELATION_MODES = ("predcls", "sgcls", "sgdet")


def relation_mode(use_gt_box: bool, use_gt_object_label: bool) -> str:
    """The task named by MODEL.ROI_RELATION_HEAD.USE_GT_BOX / USE_GT_OBJECT_LABEL.

    Without GT boxes the task is SGDet whatever the label switch says, as in the benchmark.
    """
    if use_gt_box:
        return "predcls" if use_gt_object_label else "sgcls"
    return "sgdet"


def mode_from_config(cfg) -> str:
    """The relation task of ``cfg`` ("predcls", "sgcls" or "sgdet")."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    return relation_mode(head.USE_GT_BOX, head.USE_GT_OBJECT_LABEL)


def detector_mode_from_config(cfg) -> Optional[str]:
    """None for a plain detector (MODEL.RELATION_ON False), else the relation task."""
    return mode_from_config(cfg) if cfg.MODEL.RELATION_ON else None


def check_mode(mode: str) -> str:
    """``mode`` itself, or a ValueError naming the allowed modes."""
    if mode not in RELATION_MODES:
        raise ValueError(f"mode should be one of {RELATION_MODES}, got {mode!r}")
    return mode
