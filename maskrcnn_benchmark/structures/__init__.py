"""Box and image containers shared by data loading, models and evaluation."""
from .bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from .boxlist_ops import box_iou, boxlist_iou, cat_boxlist
from .image_list import ImageList, to_image_list

__all__ = ["BoxList", "FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "box_iou", "boxlist_iou", "cat_boxlist",
           "ImageList", "to_image_list"]
