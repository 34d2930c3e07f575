"""ROI box head."""
from .box_head import ROIBoxHead, build_roi_box_head

__all__ = ["ROIBoxHead", "build_roi_box_head"]
